"""Exit statuses shared by the ``fundus-*`` commands (the C++ ``fundus-infer`` returns the same numbers)."""

from __future__ import annotations

from enum import IntEnum


class ExitStatus(IntEnum):
    """What a command's exit status means; ``REFUSED`` is added to ``OK``/``FAILED`` (4 or 5)."""

    OK = 0  # everything done
    FAILED = 1  # some image (or item) failed; the rest went on
    USAGE = 2  # usage, bundle or output-folder error: nothing ran
    REFUSED = 4  # --quality refuse refused some image (5: refused and failed)
    INTERRUPTED = 130  # stopped by a second SIGINT/SIGTERM (128 + SIGINT)

    @classmethod
    def of_run(cls, failed: int, refused: int = 0) -> int:
        """``FAILED`` when anything failed, plus ``REFUSED`` when anything was refused (0, 1, 4 or 5)."""
        return (cls.FAILED if failed else cls.OK) + (cls.REFUSED if refused else cls.OK)
