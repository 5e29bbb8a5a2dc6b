"""One command-line convention for the six Python commands and the C++ ``fundus-infer``.

``--version`` (package, bundle, ONNX Runtime, OpenCV), help text and a default for every flag,
examples and exit statuses in ``--help``, ``-o/--output`` with its old spellings, no prefix
abbreviations, ``--model NAME`` for shipped bundles (Python, C++, ``load_bundle``), and an
installed C++ binary that finds the bundles installed beside it.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
from importlib import metadata
from pathlib import Path

import pytest

from fundus_vessels.calib import cli as calib_cli
from fundus_vessels.export import cli as export_cli
from fundus_vessels.runtime import cli as infer_cli
from fundus_vessels.runtime.batch import cli as batch_cli
from fundus_vessels.runtime.bundle import DEFAULT_MODEL, BundleError, load_bundle, shipped_bundle
from fundus_vessels.runtime.imageio import write_image
from fundus_vessels.runtime.measure import cli as measure_cli
from fundus_vessels.runtime.synthetic import make_synthetic_fundus
from fundus_vessels.train import cli as train_cli
from fundus_vessels.train.config import FIELD_HELP, FIELD_TYPES

REPO = Path(__file__).resolve().parent.parent
VERSION = metadata.version("fundus-vessels")
OTHER_MODEL = "unet-drive"

# command -> (entry point, parser factory)
COMMANDS = {
    "fundus-infer": (infer_cli.main, infer_cli.build_parser),
    "fundus-batch": (batch_cli.main, batch_cli.batch_parser),
    "fundus-measure": (measure_cli.main, measure_cli.build_parser),
    "fundus-export": (export_cli.main, export_cli.get_args_parser),
    "fundus-train": (train_cli.main, train_cli.get_args_parser),
    "fundus-calib": (calib_cli.main, calib_cli.get_args_parser),
}
# a prefix of a real option of each command, and what the command needs besides
ABBREVIATED = {
    "fundus-infer": ["--demo", "-o", "OUT", "--thresh", "0.3"],
    "fundus-batch": ["x.png", "-o", "OUT", "--ray-addr", "a:1"],
    "fundus-measure": ["x.png", "-o", "OUT", "--no-pic"],
    "fundus-export": ["onnx", "--checkpoint", "x.pt", "-o", "OUT", "--no-stat"],
    "fundus-train": ["-o", "OUT", "--epoch", "1"],
    "fundus-calib": ["--bundle", "B", "--data-root", "D", "--til", "8"],
}
VERSION_LINE = re.compile(
    r"^(?P<prog>fundus-\w+) (?P<version>\S+) \((?P<impl>Python|C\+\+)\); bundle (?P<bundle>\S+); "
    r"ONNX Runtime (?P<ort>[^;]+); OpenCV (?P<opencv>\d[^;\s]*)"
)


def call(main, argv: list[str]) -> int:
    """A command's exit status, whether it returns it or argparse raises it."""
    try:
        return main(argv)
    except SystemExit as exc:
        return int(exc.code or 0)


def all_parsers() -> list[tuple[str, argparse.ArgumentParser]]:
    """Every parser of the six commands, subcommands included."""
    found = [(name, factory()) for name, (_, factory) in COMMANDS.items()]
    for name, parser in list(found):
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                found += [(f"{name} {sub}", p) for sub, p in action.choices.items()]
    return found


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_version_of_every_python_command(command: str, capsys) -> None:
    main, _ = COMMANDS[command]
    assert call(main, ["--version"]) == 0
    line = capsys.readouterr().out.strip()
    match = VERSION_LINE.match(line)
    assert match, line
    assert match["prog"] == command and match["version"] == VERSION and match["impl"] == "Python"
    assert match["bundle"] == load_bundle().meta["name"] == DEFAULT_MODEL


def test_version_names_the_model_given_before_it(capsys) -> None:
    assert infer_cli.main(["--model", OTHER_MODEL, "--version"]) == 0
    assert VERSION_LINE.match(capsys.readouterr().out)["bundle"] == OTHER_MODEL


@pytest.mark.parametrize(("name", "parser"), all_parsers(), ids=lambda x: x if isinstance(x, str) else "")
def test_every_flag_has_help_and_a_default_and_help_ends_with_examples_and_exit_codes(name, parser) -> None:
    assert not parser.allow_abbrev, name
    text = parser.format_help()
    assert "examples:" in text and "exit status:" in text and "  0  " in text and "  2  " in text, name
    formatter = parser._get_formatter()
    for action in parser._actions:
        if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)) or not action.option_strings:
            continue
        help_text = formatter._expand_help(action) if action.help else ""
        assert help_text.strip(), f"{name} {action.option_strings[0]}: no help"
        switch = isinstance(action, argparse._StoreTrueAction) or action.nargs == 0
        assert switch or action.required or "default" in help_text, f"{name} {action.option_strings}: {help_text!r}"


def test_output_flag_is_o_output_with_the_old_spellings(tmp_path: Path) -> None:
    outputs = {
        "fundus-infer": infer_cli.build_parser(),
        "fundus-batch": batch_cli.batch_parser(),
        "fundus-measure": measure_cli.build_parser(),
        "fundus-train": train_cli.get_args_parser(),
    }
    export = dict(p for p in all_parsers() if p[0] in ("fundus-export onnx", "fundus-export triton"))
    for name, parser in {**outputs, **export}.items():
        dest = next(a.dest for a in parser._actions if "-o" in a.option_strings)
        option = next(a for a in parser._actions if a.dest == dest)
        assert option.option_strings[:2] == ["-o", "--output"], name
        assert "--output-dir" not in parser.format_help() and "--out " not in parser.format_help(), name
        base = {"fundus-export triton": ["--bundle", "B"], "fundus-export onnx": ["--checkpoint", "c"]}.get(name, ["x"])
        base = [] if name == "fundus-train" else base
        for spelling in ("-o", "--output", "--output-dir", "--out"):
            args = parser.parse_args([*base, spelling, str(tmp_path)])
            assert getattr(args, dest) in (tmp_path, str(tmp_path)), (name, spelling)


@pytest.mark.parametrize("command", sorted(ABBREVIATED))
def test_prefix_abbreviations_are_refused(command: str, capsys) -> None:
    main, _ = COMMANDS[command]
    assert call(main, ABBREVIATED[command]) == 2
    assert "unrecognized arguments" in capsys.readouterr().err


def test_fundus_batch_offers_only_what_it_runs(capsys) -> None:
    text = batch_cli.batch_parser().format_help()
    for flag in ("--demo", "--watch", "--self-test", "--settle"):
        assert flag not in text
        assert call(batch_cli.main, ["x.png", "-o", "OUT", flag]) == 2
        assert "unrecognized arguments" in capsys.readouterr().err


def test_fundus_train_flags_are_described_from_the_config_fields() -> None:
    text = "".join(train_cli.get_args_parser().format_help().split())  # whitespace and line wrapping aside
    for name in FIELD_TYPES:
        assert FIELD_HELP[name].strip(), name
        if name != "preset":
            assert "".join(train_cli.setting_help(name).replace("%%", "%").split()) in text, name
    assert "--widthWIDTHchannelmultiplier" in text and "compact:0.5" in text


def test_load_bundle_takes_a_shipped_name_and_names_the_shipped_ones() -> None:
    bundle = load_bundle(OTHER_MODEL)
    assert bundle.root == shipped_bundle(OTHER_MODEL) and bundle.meta["name"] == OTHER_MODEL
    with pytest.raises(BundleError, match=r"unet-nope: bundle folder not found \(shipped bundles: .*unet-drive"):
        load_bundle("unet-nope")


@pytest.fixture(scope="module")
def photo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("photo") / "photo.png"
    write_image(path, make_synthetic_fundus(200, 200, 3).image_rgb)
    return path


def summary_bundle(out: Path) -> dict:
    return json.loads((out / "summary.json").read_text())["bundle"]


def test_python_model_name(photo: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)  # no folder of that name here
    assert infer_cli.main([str(photo), "-o", "out", "--model", OTHER_MODEL, "--quiet"]) == 0
    assert summary_bundle(tmp_path / "out")["name"] == OTHER_MODEL


def run_cpp(binary: Path, *args: str | Path, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(binary), *map(str, args)], capture_output=True, text=True, timeout=300, cwd=cwd)


def check_cpp_version(binary: Path, cwd: Path, bundle: str, *args: str) -> None:
    result = run_cpp(binary, *args, "--version", cwd=cwd)
    assert result.returncode == 0, result.stderr
    match = VERSION_LINE.match(result.stdout)
    assert match, result.stdout
    assert match["prog"] == "fundus-infer" and match["impl"] == "C++" and match["bundle"] == bundle
    assert match["version"] == VERSION  # CMakeLists.txt project(VERSION) == pyproject.toml version


def test_cpp_version_and_model_name(cpp_binary: Path, photo: Path, tmp_path: Path) -> None:
    check_cpp_version(cpp_binary, tmp_path, DEFAULT_MODEL)  # the same default as Python
    check_cpp_version(cpp_binary, tmp_path, OTHER_MODEL, "--model", OTHER_MODEL)
    result = run_cpp(cpp_binary, photo, "-o", "out", "--model", OTHER_MODEL, "--quiet", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert summary_bundle(tmp_path / "out")["name"] == OTHER_MODEL
    missing = run_cpp(cpp_binary, photo, "-o", "out", "--model", "unet-nope", cwd=tmp_path)
    assert missing.returncode == 2 and "unet-nope: bundle folder not found (shipped bundles: " in missing.stderr
    assert run_cpp(cpp_binary, photo, "-o", "out", "--thresh", "0.3", cwd=tmp_path).returncode == 2


def test_cpp_help_follows_the_convention(cpp_binary: Path, tmp_path: Path) -> None:
    text = run_cpp(cpp_binary, "--help", cwd=tmp_path).stdout
    assert "examples:" in text and "exit status:" in text and f"else {DEFAULT_MODEL})" in text
    flags = ("--backend", "--precision", "--fov", "--scale", "--threshold", "--quality", "--save", "--batch")
    for flag in (*flags, "--threads"):
        entry = text[text.index(f"  {flag} ") :].split("\n  -")[0]
        assert "default" in entry, entry


def test_cmake_install_ships_the_default_bundles(cpp_binary: Path, photo: Path, tmp_path: Path) -> None:
    if shutil.which("cmake") is None:
        pytest.skip("cmake not installed")
    prefix = tmp_path / "prefix"
    build_dir = cpp_binary.parent
    done = subprocess.run(
        ["cmake", "--install", str(build_dir), "--prefix", str(prefix)], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr
    installed = prefix / "bin" / "fundus-infer"
    for name in (DEFAULT_MODEL, OTHER_MODEL):
        assert (prefix / "share" / "fundus-vessels" / "models" / name / "model.json").is_file(), name
    work = tmp_path / "elsewhere"
    work.mkdir()
    check_cpp_version(installed, work, DEFAULT_MODEL)
    result = run_cpp(installed, photo, "-o", "out", "--quiet", cwd=work)  # no --model: the default
    assert result.returncode == 0, result.stderr
    bundle = summary_bundle(work / "out")
    assert bundle["name"] == DEFAULT_MODEL and Path(bundle["path"]).is_relative_to(prefix), bundle
    result = run_cpp(installed, photo, "-o", "out2", "--quiet", "--model", OTHER_MODEL, cwd=work)
    assert result.returncode == 0 and Path(summary_bundle(work / "out2")["path"]).is_relative_to(prefix)


def test_the_default_bundle_is_the_shipped_one_whatever_the_working_directory_holds(
    cpp_binary: Path, tmp_path: Path, monkeypatch, capsys
) -> None:
    (tmp_path / DEFAULT_MODEL).mkdir()  # an unrelated folder that happens to share the default's name
    monkeypatch.chdir(tmp_path)
    assert infer_cli.main(["--version"]) == 0
    assert VERSION_LINE.match(capsys.readouterr().out)["bundle"] == DEFAULT_MODEL
    check_cpp_version(cpp_binary, tmp_path, DEFAULT_MODEL)
