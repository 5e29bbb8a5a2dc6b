"""``python -m export``: the ``fundus-export`` command."""

import sys

from export.cli import main

sys.exit(main())
