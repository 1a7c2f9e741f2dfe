"""``python -m emokeras.cli``: the ``emokeras`` command."""

import sys

from emokeras.cli import main

sys.exit(main())
