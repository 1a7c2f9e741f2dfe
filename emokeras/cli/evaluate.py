"""``emokeras evaluate``: metrics and plots of a run on a dataset split."""

from __future__ import annotations

import argparse
from pathlib import Path

EVALUATE_HELP = """Evaluate a trained run on a dataset split: metrics, ROC AUC, per-class scores,
video-level and per-sex results (for face-crop manifests), and PNG plots, all written into the
run folder.

    emokeras evaluate saved_models/<run> --data fer2013/ --split test
    emokeras evaluate saved_models/<run> --data faces/manifest.csv --split test
"""


def evaluate_command(args) -> int:
    from emokeras.evaluation import evaluate_run

    result = evaluate_run(args.run_dir, args.data, args.split)
    frame, auc = result.frame, result.roc_auc["macro"]
    print(f"{args.split}: frame accuracy {frame.accuracy:.4f}, macro F1 "
          f"{frame.macro_f1:.4f}, ROC AUC (macro) {auc or float('nan'):.4f} "
          f"on {frame.count} faces")
    for method, metrics in result.video.items():
        print(f"  video-level, {method:>11}: accuracy {metrics.accuracy:.4f} "
              f"on {metrics.count} videos")
    for sex, metrics in result.per_sex.items():
        print(f"  {sex}: frame accuracy {metrics['frame'].accuracy:.4f}")
    print("written:", *result.written, sep="\n  ")
    return 0


def add_parser(commands) -> None:
    """Add the ``evaluate`` command to ``commands`` (the parser's subparsers)."""
    evaluate = commands.add_parser(
        "evaluate", help="metrics and plots of a run on a dataset split", description=EVALUATE_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    evaluate.add_argument("run_dir", type=Path, metavar="RUN", help="a run folder written by train")
    evaluate.add_argument("--data", type=Path, required=True, help="any dataset train reads")
    evaluate.add_argument("--split", choices=["train", "val", "test"], default="val")
    evaluate.set_defaults(run=evaluate_command)
