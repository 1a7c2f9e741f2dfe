"""Evaluate a trained run: the same as ``emokeras evaluate`` (see ``--help``).

    python evaluate.py saved_models/<run> --data fer2013/ --split test
"""

from __future__ import annotations

import sys

from emokeras.cli import main as emokeras_main


def main(argv: list[str] | None = None) -> int:
    # run as a program: TensorFlow's C++ start-up logging is kept off stderr
    args = sys.argv[1:] if argv is None else argv
    return emokeras_main(["evaluate", *args], quiet=argv is None)


if __name__ == "__main__":
    sys.exit(main())
