"""``emokeras demo``: the bundled model on a built-in example clip."""

from __future__ import annotations

import json
from pathlib import Path

from emokeras.cli.common import add_detector_arguments, detector_options
from emokeras.fileio import atomic_write


def demo_command(args) -> int:
    """The whole video path with the bundled model, on a clip built from a public-domain photo."""
    from emokeras.inference import predict_video
    from emokeras.plots import plot_timeline
    from emokeras.sample_data import make_example_videos

    clip = make_example_videos(args.out)[0]
    prediction = predict_video(clip, target_fps=10, **detector_options(args))
    timeline = plot_timeline(prediction, args.out / "demo_timeline.png")
    with atomic_write(args.out / "demo_prediction.json", encoding="utf-8") as handle:
        json.dump(prediction.to_dict(), handle, indent=2, ensure_ascii=False)
    print(f"{clip.name}: {prediction.label} {prediction.emoji} ({prediction.confidence:.0%}) "
          f"from {prediction.num_frames} of {prediction.frames_read} frames")
    print(f"timeline: {timeline}")
    return 0


def add_parser(commands) -> None:
    """Add the ``demo`` command to ``commands`` (the parser's subparsers)."""
    demo = commands.add_parser("demo", help="run the bundled model on a built-in example clip")
    demo.add_argument("--out", type=Path, default=Path("saved_models/demo"))
    add_detector_arguments(demo)
    demo.set_defaults(run=demo_command)
