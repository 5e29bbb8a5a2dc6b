"""The ``fundus-train`` command: :mod:`fundus_vessels.train.run`, or a one-line hint when torch is absent."""

from __future__ import annotations

import sys

from fundus_vessels.runtime.extras import run_with_extra


def main(argv: list[str] | None = None) -> int:
    def run() -> int:
        from fundus_vessels.train.run import main as train_main

        return train_main(argv)

    return run_with_extra("fundus-train", "train", run)


if __name__ == "__main__":
    sys.exit(main())
