"""Evaluate a trained run on a dataset split; writes <run>/evaluation_<split>.json.

    python evaluate.py saved_models/<run> --data fer2013/ --split test
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from emokeras.errors import EmokerasError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="a run folder written by train.py")
    parser.add_argument("--data", type=Path, required=True, help="any dataset train.py reads")
    parser.add_argument("--split", choices=["train", "val", "test"], default="val")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        from emokeras.datasets.sources import load_splits
        from emokeras.evaluation import evaluate_source
        from emokeras.fileio import write_json_atomic
        from emokeras.runs import load_run

        model, label_set = load_run(args.run)
        splits = load_splits(args.data, label_set)
        source = getattr(splits, args.split)
        if source is None:
            raise EmokerasError(f"{args.data} has no {args.split} split")
        metrics = evaluate_source(model, source, label_set.classes)
    except EmokerasError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    report = {"data": str(args.data), "split": args.split, "protocol": splits.protocol,
              **metrics.to_dict()}
    out = args.run / f"evaluation_{args.split}.json"
    write_json_atomic(out, report)
    print(json.dumps({k: report[k] for k in ("split", "accuracy", "macro_f1", "count")}))
    print(f"written: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
