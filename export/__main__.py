"""``python -m fundus_vessels.export``: the ``fundus-export`` command."""

import sys

from fundus_vessels.export.cli import main

sys.exit(main())
