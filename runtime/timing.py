"""Wall-clock timing of repeated calls, for the benchmarks and the self-test (never asserted in tests)."""

from __future__ import annotations

import time
from collections.abc import Callable


def timed_calls(call: Callable[[], object], repeats: int, warmup: int = 1) -> list[float]:
    """Seconds of each of ``repeats`` calls of ``call``, after ``warmup`` untimed calls."""
    for _ in range(warmup):
        call()
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        seconds.append(time.perf_counter() - start)
    return seconds
