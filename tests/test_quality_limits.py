"""The quality gate's tuned numbers have one home, runtime/quality_limits.json, read by Python and C++."""

from __future__ import annotations

import json
import re
from pathlib import Path

from fundus_vessels.runtime import quality

REPO = Path(__file__).resolve().parents[1]
LIMITS = REPO / "runtime" / "quality_limits.json"


def test_python_checks_are_the_files() -> None:
    data = json.loads(LIMITS.read_text(encoding="utf-8"))
    listed = [c for group in ("image", "vessel", "scale") for c in data["checks"][group]]
    assert len(quality.CHECKS) == len(listed) == 18
    for check, entry in zip(quality.CHECKS, listed, strict=True):
        assert (check.measure, check.low, check.usable, check.reject, check.reason) == (
            entry["measure"],
            entry["low"],
            entry.get("usable"),
            entry.get("reject"),
            entry["reason"],
        )
    assert data["constants"]["work_side"] == quality.WORK_SIDE
    assert data["constants"]["contrast_floor"] == quality.CONTRAST_FLOOR


def test_no_limit_is_written_in_the_code() -> None:
    """A hand copy of a check in either language is the drift this file exists to prevent."""
    python = (REPO / "runtime" / "quality.py").read_text(encoding="utf-8")
    cpp = (REPO / "cpp" / "src" / "quality.cpp").read_text(encoding="utf-8")
    assert not re.search(r'Check\("\w+",', python)
    assert not re.search(r'\{"(fov_fraction|brightness|vessel_fraction|scale_in_domain)"', cpp)
    assert "kQualityLimitsJson" in cpp


def test_cpp_binary_embeds_the_same_bytes(cpp_binary: Path) -> None:
    """The binary (a build tree's or an installed, stripped one) carries this file's bytes, whole."""
    assert LIMITS.read_bytes() in cpp_binary.read_bytes()
