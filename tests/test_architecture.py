"""docs/architecture.md against the code: its import arrows are the real imports, its mirrors exist.

Also: no module outside the command-line entry points imports ``runtime.cli`` (issue 25; lint-imports
holds the same rule for the library packages).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PAGE = ROOT / "docs" / "architecture.md"
PACKAGE = "fundus_vessels.runtime"
CLI_ENTRY_POINTS = {"runtime/__main__.py"}
LIBRARY_FOLDERS = ("runtime", "train", "export", "calib", "models")


def fenced(kind: str) -> list[str]:
    """The lines of the page's ```kind block."""
    match = re.search(rf"^```{kind}\n(.*?)^```", PAGE.read_text(), re.S | re.M)
    assert match, f"docs/architecture.md has no ```{kind} block"
    return [line.strip() for line in match.group(1).splitlines() if line.strip()]


def runtime_imports(path: Path) -> set[str]:
    """Modules of the runtime that ``path`` imports (relative names, ``a.b``), at load or in a function."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith(PACKAGE):
            base = node.module.removeprefix(PACKAGE).lstrip(".")
            found |= {base} if base else set()
            found |= {f"{base}.{alias.name}".lstrip(".") for alias in node.names}
        elif isinstance(node, ast.Import):
            found |= {a.name.removeprefix(PACKAGE + ".") for a in node.names if a.name.startswith(PACKAGE + ".")}
    return found


def test_import_arrows_are_the_code() -> None:
    arrows = {tuple(line.split(" -> ")) for line in fenced("imports")}
    modules = {name for arrow in arrows for name in arrow}
    real = set()
    for module in modules:
        path = ROOT / "runtime" / (module.replace(".", "/") + ".py")
        assert path.is_file(), f"{module}: no {path.relative_to(ROOT)}"
        real |= {(module, other) for other in runtime_imports(path) if other in modules and other != module}
    assert sorted(real - arrows) == [], "imports missing from docs/architecture.md"
    assert sorted(arrows - real) == [], "arrows in docs/architecture.md that the code does not have"


def test_mirrors_exist() -> None:
    for line in fenced("mirrors"):
        python, cpp = (ROOT / part.strip() for part in line.split("="))
        assert python.is_file() and cpp.is_file(), line


def test_only_entry_points_import_the_cli() -> None:
    importers = []
    for folder in LIBRARY_FOLDERS:
        for path in sorted((ROOT / folder).rglob("*.py")):
            relative = str(path.relative_to(ROOT))
            if relative != "runtime/cli.py" and "cli" in runtime_imports(path) and relative not in CLI_ENTRY_POINTS:
                importers.append(relative)
    assert importers == []


def test_architecture_page_is_in_the_nav() -> None:
    assert "architecture.md" in (ROOT / "mkdocs.yml").read_text()
