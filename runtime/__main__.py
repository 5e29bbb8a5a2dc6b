"""``python -m runtime`` = ``fundus-infer``."""

from runtime.cli import main

raise SystemExit(main())
