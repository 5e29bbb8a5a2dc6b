"""``fundus-calib``: ``build`` and ``report`` subcommands; the bare ``fundus-calib --bundle ...`` is ``build``.

Parsing only (the work itself is stubbed), so no torch, no GPU and no data.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import pytest

from fundus_vessels.calib import cli
from fundus_vessels.runtime.bundle import BundleError
from fundus_vessels.runtime.exit_status import ExitStatus

REQUIRED = ["--bundle", "B", "--data-root", "D"]
EVERY_BUILD_OPTION = [*REQUIRED, "--data", "drive,chase", "--tiles", "8", "--method", "minmax", "--seed", "3"]
EVERY_BUILD_OPTION += ["--target", "cpu"]
# the build options before the subcommands, with the defaults they had then
BUILD_DEFAULTS = {"data": "drive", "tiles": 64, "method": None, "seed": 0, "target": "both"}


def call(argv: list[str]) -> int:
    """``fundus-calib``'s exit status, whether ``main`` returns it or argparse raises it."""
    try:
        return cli.main(argv)
    except SystemExit as exc:
        return int(exc.code or 0)


@pytest.fixture
def ran(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, dict]]:
    """(mode, parsed options) of each run, with the calibration and the report stubbed (exit status 1)."""
    calls: list[tuple[str, dict]] = []

    def stub(mode: str):
        def run(args) -> int:
            calls.append((mode, vars(args)))
            return ExitStatus.FAILED

        return run

    monkeypatch.setattr(cli, "run_build", stub("build"))
    monkeypatch.setattr(cli, "run_report", stub("report"))
    return calls


@pytest.mark.parametrize("argv", [REQUIRED, EVERY_BUILD_OPTION], ids=["defaults", "every-option"])
def test_bare_form_parses_as_build(argv: list[str]) -> None:
    bare, build = cli.parse_args(argv), cli.parse_args(["build", *argv])
    assert vars(bare) == vars(build)
    assert bare.command == "build" and bare.func is cli.run_build
    assert bare.bundle == Path("B") and bare.data_root == Path("D")
    given = dict(zip(argv[4::2], argv[5::2], strict=True))
    assert given.get("--tiles", "64") == str(bare.tiles) and given.get("--target", "both") == bare.target
    if argv == REQUIRED:
        assert {k: v for k, v in vars(bare).items() if k in BUILD_DEFAULTS} == BUILD_DEFAULTS


def test_bare_form_and_build_run_the_same_thing(ran: list[tuple[str, dict]], monkeypatch) -> None:
    assert cli.main(EVERY_BUILD_OPTION) == ExitStatus.FAILED  # the status of the run, passed on
    assert cli.main(["build", *EVERY_BUILD_OPTION]) == ExitStatus.FAILED
    monkeypatch.setattr(sys, "argv", ["fundus-calib", *EVERY_BUILD_OPTION])  # the console script
    assert cli.main() == ExitStatus.FAILED
    assert cli.main(["report", *REQUIRED, "--images", "3"]) == ExitStatus.FAILED
    assert [mode for mode, _ in ran] == ["build", "build", "build", "report"]
    assert ran[0][1] == ran[1][1] == ran[2][1]
    assert ran[0][1]["method"] == "minmax" and ran[0][1]["data"] == "drive,chase"
    assert ran[3][1]["images"] == 3 and "tiles" not in ran[3][1]


def test_bare_form_and_build_fail_alike(tmp_path: Path, capsys) -> None:
    """A run's error (here: no bundle) is one ``calib:`` line and exit status 2, with or without ``build``."""
    argv = ["--bundle", str(tmp_path / "none"), "--data-root", str(tmp_path)]
    errors = []
    for form in (argv, ["build", *argv]):
        assert cli.main(form) == ExitStatus.USAGE
        errors.append(capsys.readouterr().err)
    assert errors[0] == errors[1]
    assert len(errors[0].splitlines()) == 1 and errors[0].startswith("calib: ")
    with pytest.raises(BundleError):  # the same error as the run raises itself
        cli.run_build(cli.parse_args(argv))


def test_help_lists_both_subcommands_and_the_bare_form(capsys) -> None:
    assert call(["--help"]) == 0
    text = capsys.readouterr().out
    assert text.startswith("usage: fundus-calib [-h] [--version] COMMAND ...")
    listed = re.findall(r"^    (\S+)\s+\S", text, re.MULTILINE)  # the subcommand lines under COMMAND
    assert listed == ["build", "report"]
    assert "With no subcommand, fundus-calib --bundle ... runs build" in " ".join(text.split())
    examples = text.split("examples:\n")[1].split("\n\n")[0].splitlines()
    assert [e.split()[1] for e in examples] == ["build", "report", "--bundle"]
    assert "exit status:" in text and "  2  " in text
    assert not cli.get_args_parser().allow_abbrev


@pytest.mark.parametrize(
    ("command", "own", "other"), [("build", "--tiles", "--images"), ("report", "--images", "--tiles")]
)
def test_each_subcommand_has_its_own_help(command: str, own: str, other: str, capsys) -> None:
    assert call([command, "--help"]) == 0
    text = capsys.readouterr().out
    assert text.startswith(f"usage: fundus-calib {command} [-h]")
    assert own in text and other not in text
    assert f"examples:\n  fundus-calib {command} --bundle" in text and "exit status:" in text


def test_build_help_is_also_the_help_after_bare_options(capsys) -> None:
    assert call(["--bundle", "B", "--help"]) == 0
    assert capsys.readouterr().out.startswith("usage: fundus-calib build [-h]")


def test_the_parsers_scripts_cli_reference_lists_are_the_subcommands() -> None:
    sub = next(a for a in cli.get_args_parser()._actions if isinstance(a, argparse._SubParsersAction))
    assert {name: p.prog for name, p in sub.choices.items()} == {
        "build": "fundus-calib build",
        "report": "fundus-calib report",
    }


@pytest.mark.parametrize(
    "argv",
    [
        [*REQUIRED, "--nope"],
        ["build", *REQUIRED, "--nope"],
        ["report", *REQUIRED, "--nope"],
        [*REQUIRED, "--til", "8"],  # no abbreviations
        ["report", *REQUIRED, "--tiles", "8"],  # an option of build only
        [*REQUIRED, "report"],  # the subcommand must come first
        ["bogus", *REQUIRED],
        [*REQUIRED, "--target", "gpu"],
        ["--bundle", "B"],
        ["report"],
        [],
    ],
    ids=lambda argv: " ".join(argv) or "no-arguments",
)
def test_usage_errors_are_one_line_and_exit_2(argv: list[str], ran, capsys) -> None:
    assert call(argv) == ExitStatus.USAGE
    lines = capsys.readouterr().err.strip().splitlines()
    errors = [line for line in lines if "error:" in line]
    assert len(errors) == 1 and lines[-1] == errors[0], lines
    assert re.match(r"fundus-calib( build| report)?: error: ", errors[0]), errors[0]
    assert all(line.startswith(("usage: ", " ")) for line in lines[:-1]), lines  # the rest is argparse's usage
    assert ran == []


@pytest.mark.parametrize("argv", [["--version"], ["--bundle", "B", "--version"], ["report", "--version"]])
def test_version_wherever_it_worked_before_the_subcommands(argv: list[str], capsys) -> None:
    assert call(argv) == 0
    out = capsys.readouterr().out
    assert out.startswith("fundus-calib ") and " (Python); bundle " in out
