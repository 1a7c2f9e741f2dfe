"""Evaluate a trained run on a dataset split: metrics, ROC AUC, per-class scores, video-level and
per-sex results (for face-crop manifests), and PNG plots, all written into the run folder.

    python evaluate.py saved_models/<run> --data fer2013/ --split test
    python evaluate.py saved_models/<run> --data faces/manifest.csv --split test
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from emokeras.errors import EmokerasError


def main(argv: list[str] | None = None) -> int:
    # TensorFlow's C++ start-up chatter (CUDA probes, CPU flags) is noise on a command line
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("run", type=Path, help="a run folder written by train.py")
    parser.add_argument("--data", type=Path, required=True, help="any dataset train.py reads")
    parser.add_argument("--split", choices=["train", "val", "test"], default="val")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        from emokeras.evaluation import evaluate_run

        report, written = evaluate_run(args.run, args.data, args.split)
    except EmokerasError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    frame, auc = report["frame"], report["roc_auc"]["macro"]
    print(f"{args.split}: frame accuracy {frame['accuracy']:.4f}, macro F1 "
          f"{frame['macro_f1']:.4f}, ROC AUC (macro) {auc or float('nan'):.4f} "
          f"on {frame['count']} faces")
    for method, metrics in report["video"].items():
        print(f"  video-level, {method:>11}: accuracy {metrics['accuracy']:.4f} "
              f"on {metrics['count']} videos")
    for sex, metrics in report["per_sex"].items():
        print(f"  {sex}: frame accuracy {metrics['frame']['accuracy']:.4f}")
    print("written:", *written, sep="\n  ")
    return 0


if __name__ == "__main__":
    sys.exit(main())
