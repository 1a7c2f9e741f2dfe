"""``emokeras export``: SavedModel (TF Serving), ONNX and TFLite files of a run."""

from __future__ import annotations

import sys
from pathlib import Path


def export_command(args) -> int:
    """Export a run (or the bundled model) as a SavedModel for TF Serving, ONNX and TFLite."""
    from emokeras.export import run_export

    if args.run_dir is not None and args.model is not None:
        print("error: give a run folder or --model, not both", file=sys.stderr)
        return 2
    source = args.run_dir if args.run_dir is not None else args.model
    model = None if source is None or str(source) == "bundled" else source
    if "onnx" in {f.strip().lower() for f in args.formats.split(",")}:
        # before the SavedModel is written: a missing converter is one line, not a traceback
        from emokeras.extras import require_extra

        require_extra("export", "ONNX export (--formats onnx)", ("tf2onnx", "onnx"))
    result = run_export(model, args.out, formats=args.formats, quantize=args.quantize,
                        representative=args.representative, overwrite=args.overwrite,
                        version=args.version)
    for entry in result.entries:
        checked = ""
        if entry.verified:
            checked = (f", vs Keras: max |diff| {entry.max_abs_diff_vs_keras:.2g}, top class "
                       f"agrees {entry.argmax_agreement_vs_keras:.0%}")
        print(f"{args.out / entry.path}: {entry.bytes / 1e6:.1f} MB{checked}")
    print(f"summary: {args.out / 'export.json'}")
    return 0


def add_parser(commands) -> None:
    """Add the ``export`` command to ``commands`` (the parser's subparsers)."""
    export = commands.add_parser(
        "export", help="export a model: SavedModel (TF Serving), ONNX, TFLite")
    export.add_argument("run_dir", nargs="?", type=Path,
                        help="a run folder (default: the bundled model)")
    export.add_argument("--model", help="'bundled', or a run folder (instead of RUN_DIR)")
    export.add_argument("--out", type=Path, required=True, help="write the exports here")
    export.add_argument("--formats", default="savedmodel,onnx,tflite",
                        help="comma-separated: savedmodel, onnx, tflite (default: all three)")
    export.add_argument("--quantize", default="none",
                        help="ONNX/TFLite variants, comma-separated: none, dynamic, int8 "
                             "(default none; int8 needs --representative)")
    export.add_argument("--representative", type=Path,
                        help="a folder of face crops to calibrate int8 on and to verify with")
    export.add_argument("--version", type=int, default=1,
                        help="the SavedModel's version folder (default 1)")
    export.add_argument("--overwrite", action="store_true", help="replace earlier exports")
    export.set_defaults(run=export_command)
