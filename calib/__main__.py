"""``python -m fundus_vessels.calib``."""

import sys

from fundus_vessels.calib.cli import main

sys.exit(main())
