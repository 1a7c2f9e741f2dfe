"""``emokeras ensemble``: average trained runs into one run folder."""

from __future__ import annotations

import argparse
from pathlib import Path


def ensemble_command(args) -> int:
    """Average trained runs (and their mirror images) into one run folder."""
    from emokeras.runs import ensemble_run

    out = ensemble_run(args.runs, args.out, flip=args.flip, crops=tuple(args.crop))
    views = ["the mirrored face"] * args.flip + [f"the central {c}x{c}" for c in args.crop]
    runs = f"{len(args.runs)} run{'s' * (len(args.runs) > 1)}"
    print(f"{out}: ensemble of {runs}"
          f"{', each also on ' + ' and '.join(views) if views else ''}")
    return 0


def add_parser(commands) -> None:
    """Add the ``ensemble`` command to ``commands`` (the parser's subparsers)."""
    ensemble = commands.add_parser(
        "ensemble", help="average trained runs into one model (a run folder)",
        description="Write a run folder whose model averages the class probabilities of the "
                    "given runs (same label set), by default also on each face's mirror image. "
                    "It works wherever a run folder does: predict, evaluate, export.")
    ensemble.add_argument("runs", nargs="+", type=Path, metavar="RUN_DIR")
    ensemble.add_argument("--out", type=Path, required=True, help="the run folder to write")
    ensemble.add_argument("--flip", action=argparse.BooleanOptionalAction, default=True,
                          help="also average each model on the mirrored face (default: yes)")
    ensemble.add_argument("--crop", type=int, action="append", default=[], metavar="PIXELS",
                          help="also average each model on the face's central PIXELS square, "
                               "resized back (a zoom-in; repeat for more sizes)")
    ensemble.set_defaults(run=ensemble_command)
