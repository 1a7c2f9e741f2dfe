"""Turn a folder of videos into face crops plus a manifest (resumable; a re-run skips done videos).

    python -m data_prep.extract_faces VIDEOS_DIR OUT_DIR [--target-fps 6 | --step 3] ...
    python -m data_prep.extract_faces --example OUT_DIR     # on clips built from a bundled photo
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections import Counter
from pathlib import Path

from tqdm import tqdm

from emokeras.errors import EmokerasError
from emokeras.prepare import (
    PrepareConfig,
    find_videos,
    make_detector,
    prepare_videos,
    write_manifest,
)
from emokeras.sample_data import make_example_videos


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    defaults = PrepareConfig()
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument(
        "videos", nargs="?", type=Path, help="folder of videos (searched recursively)"
    )
    parser.add_argument("out", type=Path, help="output folder: crops/, parts/, manifest.csv")
    parser.add_argument("--example", action="store_true",
                        help="build example clips into OUT/videos and use them as VIDEOS")
    sampling = parser.add_mutually_exclusive_group()
    sampling.add_argument("--target-fps", type=float, default=defaults.target_fps,
                          help=f"frames per second to keep (default {defaults.target_fps})")
    sampling.add_argument("--step", type=int, help="keep every STEP-th frame instead")
    parser.add_argument("--max-frames", type=int, help="at most this many frames per video")
    parser.add_argument("--detector", choices=["haar", "mtcnn"], default=defaults.detector)
    parser.add_argument("--which", choices=["largest", "all"], default=defaults.which,
                        help="crop the largest face of a frame, or every face")
    parser.add_argument("--size", type=int, default=defaults.size, help="crop side in pixels")
    parser.add_argument("--margin", type=float, default=defaults.margin,
                        help="margin around the face box, as a fraction of its size")
    parser.add_argument("--labels", choices=["ravdess", "folder", "none"],
                        default=defaults.label_source,
                        help="labels from RAVDESS file names, from parent folder names, or none")
    parser.add_argument("--val-fraction", type=float, default=defaults.val_fraction)
    parser.add_argument("--test-fraction", type=float, default=defaults.test_fraction)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    args = parser.parse_args(argv)
    if args.videos is None and not args.example:
        parser.error("give a VIDEOS folder, or --example")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        if args.example:
            args.videos = args.out / "videos"
            make_example_videos(args.videos)
        config = PrepareConfig(
            step=args.step, target_fps=None if args.step else args.target_fps,
            max_frames=args.max_frames, detector=args.detector, which=args.which,
            size=args.size, margin=args.margin, label_source=args.labels,
            val_fraction=args.val_fraction, test_fraction=args.test_fraction, seed=args.seed,
        )
        videos = find_videos(args.videos)
        if not videos:
            print(f"no videos found in {args.videos}", file=sys.stderr)
            return 1
        outcome: Counter[str] = Counter()
        results = prepare_videos(videos, args.videos, args.out, config,
                                 detector=make_detector(config.detector))
        for result in tqdm(results, total=len(videos), unit="video", desc="face crops"):
            if result.skipped:
                outcome["skipped (done before)"] += 1
            elif result.status is not None:
                outcome[result.status] += 1
                tqdm.write(f"{result.status}: {result.path}: {result.reason}")
            elif result.num_faces == 0:
                outcome["no face in any frame"] += 1
                tqdm.write(f"no face: {result.path} ({result.num_frames} frames sampled)")
            else:
                outcome["done"] += 1
        manifest = write_manifest(args.out, config)
    except EmokerasError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    summary = ", ".join(f"{count} {what}" for what, count in sorted(outcome.items()))
    print(f"{len(videos)} videos: {summary}\nmanifest: {manifest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
