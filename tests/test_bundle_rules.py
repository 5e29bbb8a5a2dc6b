"""The model.json contract has one home, runtime/bundle_rules.json, read by Python and (embedded) by C++.

tests/test_bundle_schema.py holds both loaders to a hand-written table of broken files; these tests
derive one broken file per rule from the rules file itself, so a rule added there is exercised in
both languages without editing a test, and a hand copy of a rule in either loader fails here.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
from test_bundle_schema import SCALE, broken_bundle

from fundus_vessels.runtime import bundle_schema
from fundus_vessels.runtime.bundle import BundleError, load_bundle
from fundus_vessels.runtime.imageio import write_image
from fundus_vessels.runtime.synthetic import make_synthetic_fundus

REPO = Path(__file__).resolve().parents[1]
RULES_FILE = REPO / "runtime" / "bundle_rules.json"
RULES = json.loads(RULES_FILE.read_text(encoding="utf-8"))


def _leaf_rules(fields: list[dict], prefix: str = "") -> list[tuple[str, dict]]:
    """(dotted key, rule) for every rule, depth first; ``files``' per-entry rules under ``files.fp32``."""
    found = []
    for rule in fields:
        key = prefix + rule["name"]
        found.append((key, rule))
        found += _leaf_rules(rule.get("fields", []), key + ".")
        if "each" in rule:
            found.append((key + ".fp32", rule["each"]))
            found += _leaf_rules(rule["each"].get("fields", []), key + ".fp32.")
    return found


CASES = _leaf_rules(RULES["fields"])


def _broken(key: str, rule: dict, meta: dict) -> tuple[object, str]:
    """A wrong-typed value for ``key`` and the message both loaders must give for it."""
    section = meta
    for name in key.split(".")[:-1]:
        section = section[name]
    bound = None
    if "below_field" in rule:
        bound = section[rule["below_field"]]
    elif "index_into" in rule:
        bound = len(section[rule["index_into"]]) - 1
    text = rule["rule"].format(**RULES["limits"], bound=bound)
    if rule["type"] == "object":
        return "x", f"{key} must be {text} (got 'x')"
    return {"wrong": 1}, f"{key} must be {text} (got an object)"


def _edit(key: str, value: object):
    def edit(meta: dict) -> None:
        meta.setdefault("scale", dict(SCALE))
        *parents, leaf = key.split(".")
        section = meta
        for name in parents:
            section = section[name]
        section[leaf] = value

    return edit


def _case(tiny_bundle: Path, key: str, rule: dict) -> tuple[object, str]:
    meta = json.loads((tiny_bundle / "model.json").read_text())
    meta.setdefault("scale", dict(SCALE))
    return _broken(key, rule, meta)


def test_every_rule_of_the_file_has_a_case() -> None:
    keys = [key for key, _ in CASES]
    assert len(keys) == 31, keys  # 8 sections + 23 values: grows with the file, never silently
    assert {"tiling.overlap", "output.vessel_index", "scale.factor_range", "files.fp32.sha256"} <= set(keys)


@pytest.mark.parametrize(("key", "rule"), CASES, ids=[key for key, _ in CASES])
def test_python_refuses_each_rule_with_the_files_wording(key: str, rule: dict, tiny_bundle: Path, tmp_path) -> None:
    value, message = _case(tiny_bundle, key, rule)
    root = broken_bundle(tiny_bundle, tmp_path / "bundle", _edit(key, value))
    with pytest.raises(BundleError) as info:
        load_bundle(root)
    assert str(info.value) == f"{root / 'model.json'}: {message}"


def test_cpp_refuses_each_rule_with_the_files_wording(cpp_binary: Path, tiny_bundle: Path, tmp_path: Path) -> None:
    image = tmp_path / "eye.png"
    write_image(image, make_synthetic_fundus(96, 96).image_rgb)
    for number, (key, rule) in enumerate(CASES):
        value, message = _case(tiny_bundle, key, rule)
        root = broken_bundle(tiny_bundle, tmp_path / f"bundle{number}", _edit(key, value))
        result = subprocess.run(
            [str(cpp_binary), str(image), "-o", str(tmp_path / f"out{number}"), "--model", str(root), "--quiet"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 2, (key, result.stderr)
        assert f"fundus-infer: error: {root / 'model.json'}: {message}" in result.stderr.splitlines(), key


def test_no_rule_is_written_in_either_loader() -> None:
    """A hand copy of a rule's wording or limit in either language is the drift this file prevents."""
    python = (REPO / "runtime" / "bundle_schema.py").read_text(encoding="utf-8")
    cpp = "".join(
        (REPO / "cpp" / name).read_text(encoding="utf-8")
        for name in ("src/bundle.cpp", "src/pipeline.cpp", "include/fundus/bundle.h", "include/fundus/pipeline.h")
    )
    for key, rule in CASES:
        wording = re.sub(r"\{\w+\}", "", rule["rule"]).split("(")[0].strip()
        if len(wording) > 12:  # short texts ("an object", "'NCHW'") say too little to be a copy
            assert wording not in python and wording not in cpp, key
    for limit in (v for v in RULES["limits"].values() if v >= 100):  # 16, 32, 64 also count sha256 digits
        assert not re.search(rf"\b{limit}\b", python) and not re.search(rf"\b{limit}\b", cpp), limit
    hand_copies = ("kMaxTile", "kTileMultiple", "kMaxClaheGrid", "kWholeMultiple", "MAX_CLAHE_GRID =", "TILING_KEYS")
    for name in hand_copies:
        assert name not in python and name not in cpp, name
    assert "kBundleRulesJson" in cpp


def test_a_limit_changed_in_the_file_changes_the_rule(tiny_bundle: Path, tmp_path: Path, monkeypatch) -> None:
    root = broken_bundle(tiny_bundle, tmp_path / "bundle", _edit("tiling.tile", 4096))
    with pytest.raises(BundleError, match="<= 2048"):
        load_bundle(root)
    monkeypatch.setitem(bundle_schema.LIMITS, "max_tile", 8192)
    assert load_bundle(root).tile == 4096


def test_cpp_binary_embeds_the_same_bytes(cpp_binary: Path) -> None:
    """The binary (a build tree's or an installed, stripped one) carries this file's bytes, whole."""
    assert RULES_FILE.read_bytes() in cpp_binary.read_bytes()
