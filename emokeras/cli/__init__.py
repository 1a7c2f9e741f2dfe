"""The ``emokeras`` command.

    emokeras predict clip.mp4 photo.jpg folder/ [--model RUN] [--output results.csv] [--plot DIR]
        [--explain DIR] [--audio-model AUDIO_RUN [--audio-weight 0.3]]
    emokeras spectrograms RAVDESS_DIR speech.npz [--labels speech5] [--duration 3] [--mel-bins 128]
    emokeras demo [--out DIR]
    emokeras ensemble RUN_DIR RUN_DIR [...] --out DIR [--no-flip] [--crop 44]
    emokeras export [RUN_DIR] --out DIR [--formats savedmodel,onnx,tflite]
                    [--quantize none,dynamic,int8] [--representative FACES_DIR]
    emokeras live --source 0 | FILE [--out annotated.mp4] [--model RUN] [--threshold 0.5]
    emokeras app [--host 127.0.0.1] [--port 7860] [--max-upload-mb 50]

One module per command in this package (``emokeras.cli.predict``, ``.train``, ...), each with its
``add_parser(commands)`` and its ``*_command(args)``; shared flags in ``emokeras.cli.common``,
config-dataclass flags in ``emokeras.cli.args``. Building the parser imports no TensorFlow, so
``--help`` is quick: a command imports what it needs when it runs.
"""

from __future__ import annotations

import argparse
import logging
import sys

from emokeras.cli import (
    app,
    demo,
    ensemble,
    evaluate,
    export,
    live,
    predict,
    prepare,
    spectrograms,
    train,
)
from emokeras.errors import EmokerasError

#: The commands in the order ``emokeras --help`` lists them
COMMANDS = (predict, train, evaluate, ensemble, demo, export, prepare, spectrograms, live, app)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="emokeras", description="Emotions in faces, in video.")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="show TensorFlow's start-up logging and info messages (give it "
                             "before the command)")
    commands = parser.add_subparsers(dest="command", required=True)
    for command in COMMANDS:
        command.add_parser(commands)
    return parser


def main(argv: list[str] | None = None, *, quiet: bool | None = None) -> int:
    """The ``emokeras`` command. ``quiet`` (default: when run as a program, ``argv`` None)
    keeps TensorFlow's C++ start-up logging off stderr; ``--verbose`` brings it back."""
    as_program = argv is None
    argv = sys.argv[1:] if argv is None else list(argv)
    verbose = False
    while argv[:1] in (["--verbose"], ["-v"]):  # the global flag, before the command
        verbose, argv = True, argv[1:]
    # CUDA probes, CPU-flag notices and cuInit errors on a CPU machine read as failures
    from emokeras.quiet import quiet_tensorflow

    quiet_tensorflow(verbose=verbose, filter_stderr=as_program if quiet is None else quiet)
    if argv[:1] == ["train"]:
        args = argparse.Namespace(run=train.train_command, train_args=argv[1:])
    else:
        args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        if getattr(args, "detector", None) == "mtcnn":  # an extra's check, before any work
            from emokeras.extras import require_extra

            require_extra("mtcnn", "the MTCNN face detector (--detector mtcnn)")
        return args.run(args)
    except EmokerasError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2

