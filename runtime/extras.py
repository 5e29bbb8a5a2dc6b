"""Console scripts whose optional dependencies are missing say which extra to install, in one sentence."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable

from fundus_vessels.runtime.exit_status import ExitStatus

# the third-party modules each extra of pyproject.toml brings
EXTRA_MODULES: dict[str, frozenset[str]] = {
    "train": frozenset({"torch", "yaml", "matplotlib"}),
    "calib": frozenset({"onnx"}),
    "measure": frozenset({"scipy", "skimage", "skan"}),
    "export": frozenset({"torch", "yaml", "matplotlib", "onnx", "onnxslim"}),
    "clinic": frozenset({"pydicom", "highdicom", "watchdog", "pylibjpeg", "libjpeg", "openjpeg"}),
    "triton": frozenset({"tritonclient", "google", "grpc", "geventhttpclient"}),
    "ray": frozenset({"ray", "pyarrow"}),
}


def extra_hint(extra: str, module: str) -> str:
    """``needs the 'EXTRA' extra (MODULE is not installed): pip install ...``, to end a one-line message."""
    return f"needs the '{extra}' extra ({module} is not installed): pip install 'fundus-vessels[{extra}]'"


def missing_extra(extra: str, modules: tuple[str, ...] | None = None) -> str | None:
    """:func:`extra_hint` for the first of ``modules`` (default: all of the extra's) not installed, else None.

    Looks the modules up without importing them, so a command can refuse before it starts work.
    """
    for module in modules or sorted(EXTRA_MODULES[extra]):
        try:
            found = importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):  # a parent package missing, or a module set to None in sys.modules
            found = False
        if not found:
            return extra_hint(extra, module)
    return None


def run_with_extra(command: str, extra: str, run: Callable[[], int]) -> int:
    """Call ``run()``; a missing module of ``extra`` becomes a one-line message and exit status 2."""
    try:
        return run()
    except ModuleNotFoundError as exc:
        top = (exc.name or "").split(".")[0]
        if top not in EXTRA_MODULES[extra]:
            raise
        print(f"{command}: {extra_hint(extra, top)}", file=sys.stderr)
        return ExitStatus.USAGE
