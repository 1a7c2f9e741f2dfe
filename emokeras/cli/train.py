"""``emokeras train``: its own parser, whose flags come from TrainConfig."""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

from emokeras.cli.args import add_config_arguments, config_from_arguments
from emokeras.labels import LABEL_SETS, get_label_set

TRAIN_HELP = """Train an emotion model on a dataset; writes saved_models/<run>/ (see emokeras.runs).

    emokeras train --data fer2013/ --backbone mobilenet_v2 --weights imagenet --input-size 96
    emokeras train --data faces/manifest.csv --labels ravdess --by-sex
    emokeras train --data ckplus48/ --config run.json --phases 0:3:1e-3,all:5:1e-4

Every TrainConfig field is a flag (see --help); --config run.json gives values, flags override.
A run killed part-way resumes when the same command is run again.
"""


def train_parser() -> argparse.ArgumentParser:
    """The train command's own parser; its flags come from TrainConfig (emokeras.configs, which
    imports no Keras, so ``train --help`` is quick)."""
    from emokeras.configs import TrainConfig

    parser = argparse.ArgumentParser(
        prog="emokeras train", description=TRAIN_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
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
    parser.add_argument("--seal-test", action="store_true",
                        help="do not score the test split at the end (choose among runs on "
                             "validation first, then score the chosen one with evaluate.py)")
    parser.add_argument("--distribute", choices=["none", "mirrored", "multiworker"],
                        default="none", help="tf.distribute strategy (multiworker reads TF_CONFIG)")
    parser.add_argument("--cpu-replicas", type=int, default=0,
                        help="split the CPU into N logical devices (try a strategy without GPUs)")
    add_config_arguments(parser, TrainConfig)
    return parser


def train_command(args) -> int:
    from emokeras.configs import TrainConfig

    logging.getLogger().setLevel(logging.INFO)  # epochs and phases are worth seeing
    options = train_parser().parse_args(args.train_args)
    config = config_from_arguments(options, TrainConfig)
    from emokeras.distribute import make_strategy, split_cpu

    if options.cpu_replicas > 1:
        split_cpu(options.cpu_replicas)  # before anything makes a tensor
    from emokeras.runs import train_run

    run = options.run or f"{config.backbone}-{time.strftime('%Y%m%d-%H%M%S')}"
    results = train_run(
        options.data, options.output_dir / run, config,
        label_set=get_label_set(options.labels) if options.labels else None,
        limit_items=options.limit, by_sex=options.by_sex,
        strategy=make_strategy(options.distribute),
        val_fraction=options.val_fraction, test_fraction=options.test_fraction,
        score_test=not options.seal_test,
    )
    for result in results:
        val = result.metrics["val"]["accuracy"]
        test = result.metrics.get("test", {}).get("accuracy")
        extra = f", test accuracy {test:.4f}" if test is not None else ""
        print(f"{result.run_dir}: validation accuracy {val:.4f}{extra}")
    return 0


def add_parser(commands) -> None:
    """Add the ``train`` command to ``commands`` (the parser's subparsers)."""
    # Listed for --help only: main() hands everything after "train" to train_parser(), whose
    # flags come from TrainConfig.
    commands.add_parser("train", add_help=False, help="train a model on a dataset")
