"""The ``emokeras`` command.

    emokeras predict clip.mp4 photo.jpg folder/ [--model RUN] [--output results.csv] [--plot DIR]
    emokeras demo [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

from tqdm import tqdm

from emokeras.aggregation import METHODS
from emokeras.datasets.base import IMAGE_EXTENSIONS
from emokeras.errors import EmokerasError
from emokeras.fileio import atomic_write, write_csv_atomic
from emokeras.prepare import VIDEO_EXTENSIONS

RESULT_FIELDS = ("path", "kind", "status", "label", "emoji", "confidence", "frames_read",
                 "frames_without_face", "error")


def _media_files(paths: list[Path]) -> list[Path]:
    """The given files, and the videos and images below the given folders, sorted."""
    wanted = {*VIDEO_EXTENSIONS, *IMAGE_EXTENSIONS}
    files = []
    for path in paths:
        if path.is_dir():
            found = (p for p in path.rglob("*") if p.suffix.lower() in wanted and p.is_file())
            files += sorted(found)
        else:
            files.append(path)  # a missing or odd file is reported by the reader, with why
    return files


def _predict_one(path: Path, model, args) -> tuple[dict, object | None]:
    from emokeras.inference import predict_image, predict_video

    if path.suffix.lower() in IMAGE_EXTENSIONS:
        face = predict_image(path, model)[0]
        row = {"kind": "image", "label": face.label, "emoji": face.emoji,
               "confidence": round(face.confidence, 4)}
        return row, None
    sampling = (
        {"frame_step": args.frame_step} if args.frame_step else {"target_fps": args.target_fps}
    )
    video = predict_video(path, model, aggregate=args.aggregate, max_frames=args.max_frames,
                          **sampling)
    row = {"kind": "video", "label": video.label, "emoji": video.emoji,
           "confidence": round(video.confidence, 4), "frames_read": video.frames_read,
           "frames_without_face": video.frames_without_face}
    return row, video


def _write_results(path: Path, rows: list[dict]) -> None:
    if path.suffix.lower() == ".json":
        with atomic_write(path, encoding="utf-8") as handle:
            json.dump(rows, handle, indent=2, ensure_ascii=False)
            handle.write("\n")
    else:
        write_csv_atomic(path, RESULT_FIELDS, rows)


def predict_command(args) -> int:
    from emokeras.inference import resolve_model
    from emokeras.plots import plot_timeline

    model = resolve_model(args.model)
    files = _media_files(args.paths)
    if not files:
        print("error: no videos or images found", file=sys.stderr)
        return 2
    rows, failed = [], 0
    for path in tqdm(files, unit="file", desc="predict", disable=len(files) == 1):
        try:
            row, video = _predict_one(path, model, args)
            if video is not None and args.plot:
                plot_timeline(video, args.plot / f"{path.stem}_timeline.png")
            rows.append({"path": str(path), "status": "ok", **row})
        except EmokerasError as error:  # a bad file is reported and the run carries on
            failed += 1
            rows.append({"path": str(path), "status": "failed", "error": str(error)})
            tqdm.write(f"failed: {path}: {error}")
    if args.output:
        _write_results(args.output, rows)
    for row in rows:
        if row["status"] == "ok":
            print(f"{row['path']}: {row['label']} {row['emoji']} ({row['confidence']:.0%})")
    print(f"{len(rows) - failed} of {len(rows)} files predicted"
          + (f", {failed} failed (see above)" if failed else ""))
    return 1 if failed == len(rows) else 0


def demo_command(args) -> int:
    """The whole video path with the bundled model, on a clip built from a public-domain photo."""
    from emokeras.inference import predict_video
    from emokeras.plots import plot_timeline
    from emokeras.sample_data import make_example_videos

    clip = make_example_videos(args.out)[0]
    prediction = predict_video(clip, target_fps=10)
    timeline = plot_timeline(prediction, args.out / "demo_timeline.png")
    with atomic_write(args.out / "demo_prediction.json", encoding="utf-8") as handle:
        json.dump(prediction.to_dict(), handle, indent=2, ensure_ascii=False)
    print(f"{clip.name}: {prediction.label} {prediction.emoji} ({prediction.confidence:.0%}) "
          f"from {prediction.num_frames} of {prediction.frames_read} frames")
    print(f"timeline: {timeline}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="emokeras", description="Emotions in faces, in video.")
    commands = parser.add_subparsers(dest="command", required=True)

    predict = commands.add_parser("predict", help="label videos and images (files or folders)")
    predict.add_argument("paths", nargs="+", type=Path)
    predict.add_argument("--model", type=Path, help="a run folder (default: the bundled model)")
    predict.add_argument("--aggregate", choices=METHODS, default="sum")
    sampling = predict.add_mutually_exclusive_group()
    sampling.add_argument("--target-fps", type=float, default=10.0)
    sampling.add_argument("--frame-step", type=int)
    predict.add_argument("--max-frames", type=int)
    predict.add_argument("--output", type=Path, help="write results to a .csv or .json file")
    predict.add_argument("--plot", type=Path, help="write each video's timeline PNG here")
    predict.set_defaults(run=predict_command)

    demo = commands.add_parser("demo", help="run the bundled model on a built-in example clip")
    demo.add_argument("--out", type=Path, default=Path("saved_models/demo"))
    demo.set_defaults(run=demo_command)
    return parser


def main(argv: list[str] | None = None) -> int:
    # TensorFlow's C++ start-up chatter (CUDA probes, CPU flags) is noise on a command line
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        return args.run(args)
    except EmokerasError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
