"""``emokeras live``: label every face of a camera or a video, frame by frame."""

from __future__ import annotations

import argparse
from pathlib import Path

from emokeras.aggregation import METHODS
from emokeras.cli.common import FAST_HELP, add_detector_arguments, detector_options


def live_command(args) -> int:
    """Label every face of a camera or a video file frame by frame; optionally save it."""
    from emokeras.live import display_available, run_live

    # by default a window where there is a display, headless elsewhere
    display = display_available() if args.display is None else args.display
    model = args.model
    if args.fast:
        from emokeras.model import resolve_model

        model = resolve_model(model).single()
    stats = run_live(args.source, model, out=args.out, threshold=args.threshold,
                     window=args.window, display=display, max_frames=args.max_frames,
                     aggregate=args.aggregate, **detector_options(args))
    print(f"{stats.frames} frames, {stats.faces} faces labelled in {stats.seconds:.1f} s: "
          f"{stats.fps:.1f} frames/s")
    if stats.out is not None:
        print(f"annotated video: {stats.out}")
    return 0


def add_parser(commands) -> None:
    """Add the ``live`` command to ``commands`` (the parser's subparsers)."""
    live = commands.add_parser("live", help="label every face of a camera or video, live")
    live.add_argument("--source", default="0", help="a camera index (default 0) or a video file")
    live.add_argument("--out", type=Path,
                      help="write the annotated video here (.mp4, .mov, .avi, lossless .mkv)")
    live.add_argument("--model", type=Path, help="a run folder (default: the bundled model)")
    live.add_argument("--fast", action="store_true", help=FAST_HELP)
    live.add_argument("--threshold", type=float, default=0.5,
                      help="below this confidence a face is 'uncertain' (default 0.5)")
    live.add_argument("--window", type=int, default=5,
                      help="frames each face's label is smoothed over (default 5)")
    live.add_argument("--aggregate", choices=METHODS, default="sum")
    live.add_argument("--max-frames", type=int, help="stop after this many frames")
    live.add_argument("--display", action=argparse.BooleanOptionalAction, default=None,
                      help="show a window (default: only where there is a display)")
    add_detector_arguments(live)
    live.set_defaults(run=live_command)
