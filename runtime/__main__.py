"""``python -m fundus_vessels.runtime`` = ``fundus-infer``."""

from fundus_vessels.runtime.cli import main

raise SystemExit(main())
