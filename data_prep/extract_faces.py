"""Turn a folder of videos into face crops plus a manifest: the same as ``emokeras prepare``
(see ``--help``), kept for the repository's ``data_prep/`` layout.

    python -m data_prep.extract_faces VIDEOS_DIR OUT_DIR [--target-fps 6 | --step 3] ...
    python -m data_prep.extract_faces --example OUT_DIR     # on clips built from a bundled photo
"""

from __future__ import annotations

import sys

from emokeras.cli import main as emokeras_main


def main(argv: list[str] | None = None) -> int:
    # run as a program: TensorFlow's C++ start-up logging is kept off stderr
    args = sys.argv[1:] if argv is None else argv
    return emokeras_main(["prepare", *args], quiet=argv is None)


if __name__ == "__main__":
    sys.exit(main())
