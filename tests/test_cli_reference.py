"""docs/cli.md, the table of every command's flags, is what the parsers say (scripts/cli_reference.py)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "cli_reference.py"


def load_script():
    spec = importlib.util.spec_from_file_location("cli_reference", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_cli_reference_page_is_current() -> None:
    reference = load_script()
    assert reference.PAGE.read_text() == reference.render(), "docs/cli.md is stale: python scripts/cli_reference.py"


def test_cli_reference_lists_every_command_and_flag() -> None:
    reference = load_script()
    text = reference.render()
    for name, parser in reference.parsers():
        assert f"## `{name}`" in text
        for action in parser._actions:
            if action.option_strings and action.option_strings[0] not in ("-h",):
                assert f"`{action.option_strings[0]}`" in text, (name, action.option_strings)


def test_cli_reference_is_the_same_on_every_machine() -> None:
    text = load_script().render()
    assert str(SCRIPT.parent.parent) not in text and "/site-packages/" not in text
