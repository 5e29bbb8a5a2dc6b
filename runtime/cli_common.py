"""The command-line convention every ``fundus-*`` command follows (the C++ ``fundus-infer`` too).

- ``--version``: package version, the bundle a run would use, ONNX Runtime and OpenCV versions;
- every flag has help text and shows its default (``(default: X)``, or says in words where it comes from);
- ``--help`` ends with examples and the exit statuses;
- one output flag, ``-o/--output`` (``--output-dir`` and ``--out`` still accepted, not shown);
- no prefix abbreviations: ``--thresh`` is refused, not read as ``--threshold``.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
from importlib import metadata
from pathlib import Path

__all__ = ["HelpFormatter", "add_output_argument", "add_subcommand", "new_parser", "subparser_options", "version_text"]

PACKAGE = "fundus-vessels"
# older spellings of -o/--output, accepted everywhere and left out of --help
OLD_OUTPUT_SPELLINGS = ("--output-dir", "--out")
ORT_DISTRIBUTIONS = ("onnxruntime", "onnxruntime-gpu", "onnxruntime-openvino", "onnxruntime-directml")


class HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """Epilogs kept as written; ``(default: X)`` after every option that has a value default.

    Switches (default off), required options, and help that already says ``default`` are left as
    written; the old output spellings are not listed.
    """

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        no_value = action.default is None or action.default is False or action.default == argparse.SUPPRESS
        if "default" in text or action.required or no_value:
            return text
        if action.option_strings or action.nargs in (argparse.OPTIONAL, argparse.ZERO_OR_MORE):
            return f"{text} (default: %(default)s)"
        return text

    def _format_action_invocation(self, action: argparse.Action) -> str:
        if any(o in OLD_OUTPUT_SPELLINGS for o in action.option_strings[1:]):
            action = copy.copy(action)
            action.option_strings = [o for o in action.option_strings if o not in OLD_OUTPUT_SPELLINGS]
        return super()._format_action_invocation(action)


def package_version() -> str:
    try:
        return metadata.version(PACKAGE)
    except metadata.PackageNotFoundError:
        return "unknown"


def onnxruntime_version() -> str:
    for name in ORT_DISTRIBUTIONS:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return "not installed"


def bundle_name(model: str | os.PathLike | None) -> str:
    """``model.json``'s name of the bundle ``model`` (a folder or a shipped name; default: the shipped default)."""
    from fundus_vessels.runtime.bundle import DEFAULT_BUNDLE, MODEL_JSON, bundle_path

    folder = bundle_path(model) if model is not None else DEFAULT_BUNDLE
    try:
        return str(json.loads((folder / MODEL_JSON).read_text()).get("name", folder.name))
    except (OSError, ValueError, AttributeError):
        return f"{folder} (not found)"


def version_text(prog: str, model: str | os.PathLike | None = None) -> str:
    """``PROG VERSION (Python); bundle NAME; ONNX Runtime X; OpenCV Y``: the C++ binary writes the same fields."""
    import cv2

    return (
        f"{prog} {package_version()} (Python); bundle {bundle_name(model)}; "
        f"ONNX Runtime {onnxruntime_version()}; OpenCV {cv2.__version__}"
    )


class VersionAction(argparse.Action):
    """``--version``: prints :func:`version_text` (of ``--model`` when it came first) and exits 0."""

    def __init__(self, option_strings: list[str], dest: str = argparse.SUPPRESS, **kwargs: object) -> None:
        kwargs.setdefault("help", "print the package, bundle, ONNX Runtime and OpenCV versions and exit")
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        print(version_text(parser.prog.split()[0], getattr(namespace, "model", None)))
        parser.exit()


def epilog(examples: list[str], exit_codes: dict[int, str]) -> str:
    lines = ["examples:", *(f"  {e}" for e in examples), "", "exit status:"]
    lines += [f"  {code}  {meaning}" for code, meaning in exit_codes.items()]
    return "\n".join(lines)


def subparser_options(description: str, examples: list[str], exit_codes: dict[int, str]) -> dict:
    """Keyword arguments for ``add_subparsers().add_parser(...)`` that follow the convention."""
    return {
        "description": description,
        "epilog": epilog(examples, exit_codes),
        "formatter_class": HelpFormatter,
        "allow_abbrev": False,
    }


def add_subcommand(
    sub: argparse._SubParsersAction, prog: str, name: str, help: str, examples: list[str], exit_codes: dict[int, str]
) -> argparse.ArgumentParser:
    """One subcommand of ``prog`` that follows the convention: ``PROG NAME --help`` shows ``help``, the examples
    (each given without the ``PROG NAME`` prefix) and the exit codes."""
    return sub.add_parser(
        name, help=help, **subparser_options(help, [f"{prog} {name} {e}" for e in examples], exit_codes)
    )


def new_parser(prog: str, description: str, examples: list[str], exit_codes: dict[int, str]) -> argparse.ArgumentParser:
    """An ``ArgumentParser`` that follows the convention, ``--version`` included."""
    parser = argparse.ArgumentParser(prog=prog, **subparser_options(description, examples, exit_codes))
    parser.add_argument("--version", action=VersionAction)
    return parser


def add_output_argument(
    parser: argparse.ArgumentParser, help: str, dest: str = "output_dir", metavar: str = "OUTDIR", required: bool = True
) -> None:
    """``-o/--output`` (also ``--output-dir``, ``--out``), a :class:`~pathlib.Path`."""
    parser.add_argument(
        "-o", "--output", *OLD_OUTPUT_SPELLINGS, dest=dest, required=required, type=Path, metavar=metavar, help=help
    )
