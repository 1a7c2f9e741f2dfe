"""Train an emotion model: the same as ``emokeras train`` (see ``--help``).

    python train.py --data fer2013/ --backbone mobilenet_v2 --weights imagenet --input-size 96
"""

from __future__ import annotations

import sys

from emokeras.cli import main as emokeras_main


def main(argv: list[str] | None = None) -> int:
    # run as a program: TensorFlow's C++ start-up logging is kept off stderr
    args = sys.argv[1:] if argv is None else argv
    return emokeras_main(["train", *args], quiet=argv is None)


if __name__ == "__main__":
    sys.exit(main())
