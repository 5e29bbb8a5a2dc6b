"""Write docs/cli.md, the table of every command's flags, from the commands' own argparse parsers.

    python scripts/cli_reference.py            # rewrite docs/cli.md
    python scripts/cli_reference.py --check    # exit 1 if docs/cli.md is not what the parsers say

tests/test_cli_reference.py runs the check, so the page cannot drift from the code.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from fundus_vessels.calib import cli as calib_cli
from fundus_vessels.export import cli as export_cli
from fundus_vessels.runtime import cli as infer_cli
from fundus_vessels.runtime.batch import cli as batch_cli
from fundus_vessels.runtime.cli_common import OLD_OUTPUT_SPELLINGS
from fundus_vessels.runtime.measure import cli as measure_cli
from fundus_vessels.train import cli as train_cli

PAGE = Path(__file__).resolve().parent.parent / "docs" / "cli.md"
HEADER = """# Command-line reference

Every flag of the six Python commands, generated from their parsers by `python scripts/cli_reference.py`
(`tests/test_cli_reference.py` fails when this page is out of date). All of them follow one convention:
`--version` prints the package, bundle, ONNX Runtime and OpenCV versions; `--help` shows each flag's default,
examples and the exit statuses; the output folder is `-o/--output` (`--output-dir` and `--out` are still
accepted); flags are never abbreviated (`--thresh` is refused). The C++ `fundus-infer` follows the same
convention for the subset of `fundus-infer`'s flags it supports (`build/fundus-infer --help`; `cpp/README.md`).
"""


def parsers() -> list[tuple[str, argparse.ArgumentParser]]:
    """(command, parser) for every command and subcommand, in the order the page lists them."""
    found = [
        ("fundus-infer", infer_cli.build_parser()),
        ("fundus-batch", batch_cli.batch_parser()),
        ("fundus-measure", measure_cli.build_parser()),
        ("fundus-train", train_cli.get_args_parser()),
        ("fundus-export", export_cli.get_args_parser()),
        ("fundus-calib", calib_cli.get_args_parser()),
    ]
    for name, parser in list(found):
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                at = next(i for i, (n, _) in enumerate(found) if n == name) + 1
                found[at:at] = [(f"{name} {sub}", p) for sub, p in action.choices.items()]
    return found


def cell(text: str) -> str:
    """One line of Markdown table text: pipes, angle brackets and asterisks escaped."""
    text = " ".join(str(text).split()).replace("|", "\\|").replace("*", "\\*")
    return text.replace("<", "&lt;").replace(">", "&gt;")


def value_of(action: argparse.Action) -> str:
    if not action.option_strings:
        return f"{action.metavar} ..." if action.nargs in ("*", "+") else str(action.metavar)
    if action.nargs == 0:
        return ""
    if action.choices:
        return "|".join(map(str, action.choices))
    return action.metavar or action.dest.upper()


def default_of(action: argparse.Action) -> str:
    if not action.option_strings:  # positional
        return "one or more" if action.nargs == "+" else ""
    if action.required:
        return "required"
    if action.nargs == 0 or action.default is None or action.default == argparse.SUPPRESS:
        return ""
    return f"`{action.default}`"


def describe(action: argparse.Action, parser: argparse.ArgumentParser) -> str:
    """The help text as ``--help`` prints it, without the ``(default: X)`` the default column already has."""
    text = parser._get_formatter()._expand_help(action) if action.help else ""
    return text.replace(f" (default: {action.default})", "")


def split_default(action: argparse.Action, text: str) -> tuple[str, str]:
    """(default, description): a default the help states, ``(...; default: X)`` at its end, moves to its column."""
    match = re.search(r"\s*\((?:([^()]*?); )?default: ([^()]*)\)$", text)
    if match:
        return match[2], text[: match.start()] + (f" ({match[1]})" if match[1] else "")
    return default_of(action), text


def table(name: str, parser: argparse.ArgumentParser) -> list[str]:
    lines = [f"## `{name}`", "", cell(parser.description or ""), ""]
    lines += ["| flag | value | default | what it does |", "| --- | --- | --- | --- |"]
    for action in parser._actions:
        if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)):
            continue
        flags = [o for o in action.option_strings if o not in OLD_OUTPUT_SPELLINGS] or [action.metavar or action.dest]
        default, text = split_default(action, describe(action, parser))
        lines.append(
            f"| {', '.join(f'`{f}`' for f in flags)} | {cell(value_of(action))} | {cell(default)} | {cell(text)} |"
        )
    epilog = parser.epilog.split("\n\nexit status:\n")
    lines += ["", "Examples:", "", "```sh", *(e.strip() for e in epilog[0].splitlines()[1:]), "```", ""]
    lines += ["Exit status: " + "; ".join(cell(c) for c in epilog[1].splitlines()) + ".", ""]
    return lines


def render() -> str:
    lines = [HEADER]
    for name, parser in parsers():
        lines += table(name, parser)
    return "\n".join(lines).rstrip() + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    parser.add_argument("--check", action="store_true", help="only check that docs/cli.md is current")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        current = PAGE.read_text() if PAGE.is_file() else ""
        if current != text:
            print(f"{PAGE} is out of date: run python scripts/cli_reference.py", file=sys.stderr)
            return 1
        return 0
    PAGE.write_text(text)
    print(f"wrote {PAGE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
