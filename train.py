"""Train an emotion model on a dataset; writes saved_models/<run>/ (see emokeras.runs).

    python train.py --data fer2013/ --backbone mobilenet_v2 --weights imagenet --input-size 96
    python train.py --data faces/manifest.csv --labels ravdess --by-sex
    python train.py --data ckplus48/ --config run.json --phases 0:3:1e-3,all:5:1e-4

Every TrainConfig field is a flag (see --help); --config run.json gives values, flags override.
A run killed part-way resumes when the same command is run again.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from pathlib import Path

from emokeras.cliargs import add_config_arguments, config_from_arguments
from emokeras.errors import EmokerasError
from emokeras.labels import LABEL_SETS, get_label_set


def parse_args(argv: list[str] | None):
    from emokeras.training import TrainConfig

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, required=True,
                        help="FER2013 CSV or folders, a data_prep manifest.csv, or class folders")
    parser.add_argument("--labels", choices=sorted(LABEL_SETS),
                        help="label set of a manifest or class folders (FER2013 knows its own)")
    parser.add_argument("--run", help="run name (default: <backbone>-<date>-<time>)")
    parser.add_argument("--output-dir", type=Path, default=Path("saved_models"))
    parser.add_argument("--limit", type=int, help="at most this many random items per split")
    parser.add_argument("--by-sex", action="store_true",
                        help="train one model per sex from a manifest's sex column")
    parser.add_argument("--val-fraction", type=float, default=0.15,
                        help="for class folders: share of subjects held out for validation")
    parser.add_argument("--test-fraction", type=float, default=0.15,
                        help="for class folders: share of subjects held out for testing")
    parser.add_argument("--distribute", choices=["none", "mirrored", "multiworker"],
                        default="none", help="tf.distribute strategy (multiworker reads TF_CONFIG)")
    parser.add_argument("--cpu-replicas", type=int, default=0,
                        help="split the CPU into N logical devices (try a strategy without GPUs)")
    add_config_arguments(parser, TrainConfig)
    args = parser.parse_args(argv)
    return args, config_from_arguments(args, TrainConfig)


def main(argv: list[str] | None = None) -> int:
    # TensorFlow's C++ start-up chatter (CUDA probes, CPU flags) is noise on a command line
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        args, config = parse_args(argv)
        from emokeras.distribute import make_strategy, split_cpu

        if args.cpu_replicas > 1:
            split_cpu(args.cpu_replicas)  # before anything makes a tensor
        from emokeras.runs import train_run

        run = args.run or f"{config.backbone}-{time.strftime('%Y%m%d-%H%M%S')}"
        results = train_run(
            args.data, args.output_dir / run, config,
            label_set=get_label_set(args.labels) if args.labels else None,
            limit_items=args.limit, by_sex=args.by_sex, strategy=make_strategy(args.distribute),
            val_fraction=args.val_fraction, test_fraction=args.test_fraction,
        )
    except EmokerasError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    for result in results:
        val = result.metrics["val"]["accuracy"]
        test = result.metrics.get("test", {}).get("accuracy")
        extra = f", test accuracy {test:.4f}" if test is not None else ""
        print(f"{result.run_dir}: validation accuracy {val:.4f}{extra}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
