"""``emokeras spectrograms``: spectrogram images of RAVDESS-named audio or video files."""

from __future__ import annotations

import sys
from pathlib import Path

from emokeras.labels import get_label_set


def spectrograms_command(args) -> int:
    """Spectrogram images of RAVDESS-named audio or video files, as an .npz to train on."""
    from emokeras.audio import SpectrogramConfig
    from emokeras.datasets.spectrograms import audio_spectrogram_set, save_spectrogram_npz

    config = SpectrogramConfig(duration=args.duration, num_mel_bins=args.mel_bins)
    source = args.src if args.src.is_dir() else [args.src]
    spec_set, failures = audio_spectrogram_set(source, config, get_label_set(args.labels),
                                               progress=True)
    for path, reason in failures:  # a bad file is reported and the others carry on
        print(f"failed: {path}: {reason}")
    if not len(spec_set):
        print(f"error: no spectrogram made from {args.src} ({len(failures)} failed), nothing "
              "written", file=sys.stderr)
        return 1
    save_spectrogram_npz(args.out, spec_set)
    counts = ", ".join(f"{name} {n}" for name, n in spec_set.class_counts().items())
    speakers = len(set(spec_set.subjects or ()))
    print(f"{args.out}: {len(spec_set)} spectrograms {config.image_shape[0]}x"
          f"{config.image_shape[1]} of {speakers} speakers ({counts})"
          + (f", {len(failures)} failed (see above)" if failures else ""))
    return 0


def add_parser(commands) -> None:
    """Add the ``spectrograms`` command to ``commands`` (the parser's subparsers)."""
    spectrograms = commands.add_parser(
        "spectrograms", help="spectrogram images of RAVDESS-named audio/video files, as .npz",
        description="Spectrogram images of the speech in RAVDESS-named audio or video files "
                    "(labels from the names' emotion codes), written as an .npz that "
                    "'emokeras train --data' reads. Files of emotions outside the label set and "
                    "RAVDESS video-only files are skipped; unreadable files are reported.")
    spectrograms.add_argument("src", type=Path, metavar="SRC",
                              help="a folder (searched recursively) or one file")
    spectrograms.add_argument("out", type=Path, metavar="OUT.npz")
    spectrograms.add_argument("--labels", choices=["ravdess", "speech5"], default="speech5",
                              help="ravdess: all 8 emotions; speech5 (default): neutral, "
                                   "fearful, happy, sad, surprised")
    spectrograms.add_argument("--duration", type=float, default=3.0,
                              help="seconds of audio per image, centre-cropped or padded "
                                   "(default 3.0)")
    spectrograms.add_argument("--mel-bins", type=int, default=128,
                              help="mel bands: the image height (default 128; 0: linear STFT)")
    spectrograms.set_defaults(run=spectrograms_command)
