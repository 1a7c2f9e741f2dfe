"""``emokeras prepare``: face crops and a manifest from a folder of videos."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tqdm import tqdm

from emokeras.cli.args import add_config_arguments, config_from_arguments
from emokeras.errors import ConfigError

PREPARE_HELP = """Turn a folder of videos into square face crops plus a manifest.csv (video id,
frame, timestamp, box, crop path, label, actor, sex, subject-grouped split, status, reason).
Resumable: a re-run skips finished videos. Unreadable videos, frames without a face and names
that give no label are recorded with the reason, and the run carries on.

    emokeras prepare RAVDESS/ faces/ --target-fps 6 --size 224
    emokeras prepare --example faces/        # on clips built from a bundled public-domain photo

Every PrepareConfig field is a flag; --config prep.json gives values, flags override.
"""


def _add_prepare_arguments(parser: argparse.ArgumentParser) -> None:
    from emokeras.prepare import PrepareConfig

    parser.add_argument("videos", nargs="?", type=Path, metavar="VIDEOS",
                        help="folder of videos (searched recursively)")
    parser.add_argument("out", type=Path, metavar="OUT",
                        help="output folder: crops/, parts/, manifest.csv, prepare.json")
    parser.add_argument("--example", action="store_true",
                        help="build example clips into OUT/videos and use them as VIDEOS")
    parser.add_argument("--labels", dest="label_source", choices=["ravdess", "folder", "none"],
                        default=argparse.SUPPRESS, help="the same as --label-source")
    add_config_arguments(parser, PrepareConfig)


def prepare_command(args) -> int:
    """Face crops and a manifest from a folder of videos (resumable)."""
    from collections import Counter

    from emokeras.prepare import (
        PrepareConfig,
        find_videos,
        make_detector,
        prepare_videos,
        write_manifest,
    )

    if args.videos is None and not args.example:
        raise ConfigError("give a VIDEOS folder, or --example")
    if getattr(args, "step", None) is not None and not hasattr(args, "target_fps"):
        args.target_fps = None  # --step replaces the default frame rate
    config = config_from_arguments(args, PrepareConfig)
    if config.detector == "mtcnn":  # before any work: one line naming the extra
        from emokeras.extras import require_extra

        require_extra("mtcnn", "the MTCNN face detector")
    detector = make_detector(config.detector, config.detector_threshold)
    if args.example:
        from emokeras.sample_data import make_example_videos

        args.videos = args.out / "videos"
        make_example_videos(args.videos)
    videos = find_videos(args.videos)
    if not videos:
        print(f"error: no videos found in {args.videos}", file=sys.stderr)
        return 1
    outcome: Counter[str] = Counter()
    results = prepare_videos(videos, args.videos, args.out, config, detector=detector)
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
    summary = ", ".join(f"{count} {what}" for what, count in sorted(outcome.items()))
    print(f"{len(videos)} videos: {summary}\ncrops: {args.out / 'crops'}\nmanifest: {manifest}")
    return 0


def add_parser(commands) -> None:
    """Add the ``prepare`` command to ``commands`` (the parser's subparsers)."""
    prepare = commands.add_parser(
        "prepare", help="face crops and a manifest from a folder of videos (resumable)",
        description=PREPARE_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_prepare_arguments(prepare)
    prepare.set_defaults(run=prepare_command)
