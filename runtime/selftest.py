"""``fundus-infer --self-test``: every backend and precision this device can run, held to the bundle's tolerances.

The command a device owner runs after installing (a Jetson, a clinic GPU, a plain CPU). Each
candidate (ONNX Runtime FP32/FP16/INT8 on whatever providers load here, OpenCV DNN FP32, native
TensorRT FP32/FP16/INT8, whose engines are built when absent) runs the same inputs: synthetic fundus
photographs (known vessels and FOV, :mod:`runtime.synthetic`) tiled and stitched as the runtime
does, and tiles cropped at random from further synthetic photographs. Each is compared with ONNX
Runtime on the CPU in FP32 against the tolerance of its precision (:data:`runtime.agreement.TOLERANCES`,
the same limits ``fundus-export parity`` holds every backend to) and timed in tiles per second at a
few batch sizes. Prints a table, writes ``self-test.json``, lists what it could not run and why.
Exit status: 0 all ran within tolerance, 1 a candidate was outside tolerance or failed to run,
2 the bundle or output folder is unusable.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from fundus_vessels.runtime.agreement import (
    TOLERANCES,
    Agreement,
    Judged,
    Plane,
    Run,
    Tolerance,
    compare,
    failures,
    run_backend,
    synthetic_planes,
)
from fundus_vessels.runtime.backends import Backend, BackendError, create_backend
from fundus_vessels.runtime.backends.ort import CPU_ONLY, open_session, session_predictor
from fundus_vessels.runtime.bundle import PRECISION_FILES, Bundle, BundleError
from fundus_vessels.runtime.exit_status import ExitStatus
from fundus_vessels.runtime.imageio import write_json
from fundus_vessels.runtime.preprocess import preprocess
from fundus_vessels.runtime.synthetic import make_synthetic_fundus
from fundus_vessels.runtime.timing import timed_calls

SELF_TEST_JSON = "self-test.json"
TOOL = "fundus-infer --self-test"
CANDIDATES = (
    ("ort", "fp32"),
    ("ort", "fp16"),
    ("ort", "int8"),
    ("opencv", "fp32"),
    ("trt", "fp32"),
    ("trt", "fp16"),
    ("trt", "int8"),
)
BATCHES = (1, 4, 8)
REFERENCE = "onnxruntime CPU fp32"


@dataclass(frozen=True)
class Settings:
    """What the self-test runs: synthetic images of ``image_size``², ``drawn_tiles`` random crops, timing batches."""

    images: int = 2
    image_size: int = 384
    drawn_tiles: int = 8
    batches: tuple[int, ...] = BATCHES
    repeats: int = 3
    threads: int | None = None
    build_engines: bool = True


def drawn_tiles(bundle: Bundle, count: int, seed: int = 100) -> np.ndarray:
    """(count, 1, tile, tile) crops at random places of two synthetic photographs not used for the planes."""
    rng = np.random.default_rng(seed)
    tile, size = bundle.tile, max(2 * bundle.tile, 384)
    planes = [preprocess(make_synthetic_fundus(size, size, seed=seed + i).image_rgb, bundle.preprocess) for i in (0, 1)]
    tiles = []
    for i in range(count):
        y, x = (int(v) for v in rng.integers(0, size - tile + 1, 2))
        tiles.append(planes[i % 2][y : y + tile, x : x + tile])
    return np.stack(tiles)[:, None].astype(np.float32)


def tiles_per_second(predict: Callable[[np.ndarray], np.ndarray], tiles: np.ndarray, batch: int, repeats: int) -> float:
    """Median tiles/s of ``repeats`` calls on ``batch`` tiles (after one warm-up call)."""
    x = np.ascontiguousarray(np.resize(tiles, (batch, *tiles.shape[1:])))
    return round(batch / float(np.median(timed_calls(lambda: predict(x), repeats))), 2)


def open_candidate(bundle: Bundle, kind: str, precision: str, settings: Settings) -> Backend:
    """The backend of one candidate; TensorRT engines are built first when absent or stale."""
    if kind == "trt":
        from fundus_vessels.runtime.backends.trt import engine_problem, tensorrt_status

        reason = tensorrt_status()
        if reason is not None:
            raise LookupError(reason)
        if settings.build_engines and engine_problem(bundle, precision) is not None:
            from fundus_vessels.runtime.backends.trt_build import build_engine

            build_engine(bundle, precision)
    return create_backend(kind, bundle, precision, settings.threads)


def source_key(kind: str, precision: str) -> str:
    """The bundle file a candidate needs (OpenCV DNN runs the fixed-shape FP32 file)."""
    return "fp32_static" if kind == "opencv" else precision


def _speed_json(speed: dict[int, float]) -> dict[str, float]:
    """Tiles/s by batch size as JSON writes it (keys are strings)."""
    return {str(batch): rate for batch, rate in speed.items()}


def _speed_from_json(data: dict[str, float]) -> dict[int, float]:
    return {int(batch): rate for batch, rate in data.items()}


@dataclass(frozen=True)
class CandidateResult(Judged):
    """A candidate that ran: its agreement with the reference (drawn tiles included), speed and verdict."""

    backend: str
    precision: str
    model_file: str
    providers: tuple[str, ...] | None  # ONNX Runtime's providers (None: a backend without any)
    agreement: Agreement  # tile_max_abs_diff covers the drawn tiles too
    drawn_tile_max_abs_diff: float
    tiles_per_second: dict[int, float]  # batch size -> median tiles/s
    tolerance: Tolerance
    failures: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        """An entry of self-test.json ``results`` (the C++ self-test's ``Outcome::json`` follows it)."""
        return {
            "backend": self.backend,
            "precision": self.precision,
            "model_file": self.model_file,
            **({} if self.providers is None else {"providers": list(self.providers)}),
            **self.agreement.to_json(),
            "drawn_tile_max_abs_diff": self.drawn_tile_max_abs_diff,
            "tiles_per_second": _speed_json(self.tiles_per_second),
            "tolerance": self.tolerance.to_json(),
            "pass": self.passed,
            "failures": list(self.failures),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CandidateResult:
        providers = data.get("providers")
        return cls(
            backend=data["backend"],
            precision=data["precision"],
            model_file=data["model_file"],
            providers=None if providers is None else tuple(providers),
            agreement=Agreement.from_json(data),
            drawn_tile_max_abs_diff=data["drawn_tile_max_abs_diff"],
            tiles_per_second=_speed_from_json(data["tiles_per_second"]),
            tolerance=Tolerance(**data["tolerance"]),
            failures=tuple(data["failures"]),
        )


@dataclass(frozen=True)
class NotRun:
    """A candidate this machine cannot run (its file is not in the bundle, its library or device is not here)."""

    reason: str


@dataclass(frozen=True)
class RunError:
    """A candidate that should have run and failed to: a self-test failure."""

    message: str


Outcome = CandidateResult | NotRun | RunError


@dataclass(frozen=True)
class SelfTestReport:
    """``self-test.json``: every candidate's outcome, by name, in the order they were tried."""

    bundle_name: str
    bundle_path: str
    reference_tiles_per_second: dict[int, float]  # batch size -> ONNX Runtime CPU FP32 tiles/s
    images: tuple[str, ...]  # the synthetic planes' names
    image_size: int
    plane_tiles: int
    drawn_tiles: int
    outcomes: dict[str, Outcome]
    tool: str = TOOL
    reference: str = REFERENCE
    reference_model_file: str = PRECISION_FILES["fp32"]
    mask_region: str = "fov"

    def _of(self, kind: type) -> dict:
        return {name: o for name, o in self.outcomes.items() if isinstance(o, kind)}

    @property
    def results(self) -> dict[str, CandidateResult]:
        return self._of(CandidateResult)

    @property
    def skipped(self) -> dict[str, str]:
        return {name: o.reason for name, o in self._of(NotRun).items()}

    @property
    def errors(self) -> dict[str, str]:
        return {name: o.message for name, o in self._of(RunError).items()}

    @property
    def passed(self) -> bool:
        """Something ran, nothing failed to run, and everything that ran is within tolerance."""
        results = self.results
        return bool(results) and not self.errors and all(r.passed for r in results.values())

    def to_json(self) -> dict[str, Any]:
        """self-test.json's content: the one place its keys and their order are written."""
        return {
            "tool": self.tool,
            "bundle": {"name": self.bundle_name, "path": self.bundle_path},
            "reference": {
                "name": self.reference,
                "model_file": self.reference_model_file,
                "tiles_per_second": _speed_json(self.reference_tiles_per_second),
            },
            "inputs": {
                "images": list(self.images),
                "image_size": self.image_size,
                "plane_tiles": self.plane_tiles,
                "drawn_tiles": self.drawn_tiles,
                "mask_region": self.mask_region,
            },
            "results": {name: r.to_json() for name, r in self.results.items()},
            "skipped": self.skipped,
            "errors": self.errors,
            "pass": self.passed,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SelfTestReport:
        """A self-test.json read back (``pass`` is recomputed from the outcomes)."""
        reference, inputs = data["reference"], data["inputs"]
        outcomes: dict[str, Outcome] = {name: CandidateResult.from_json(r) for name, r in data["results"].items()}
        outcomes |= {name: NotRun(why) for name, why in data["skipped"].items()}
        outcomes |= {name: RunError(why) for name, why in data["errors"].items()}
        return cls(
            bundle_name=data["bundle"]["name"],
            bundle_path=data["bundle"]["path"],
            reference_tiles_per_second=_speed_from_json(reference["tiles_per_second"]),
            images=tuple(inputs["images"]),
            image_size=inputs["image_size"],
            plane_tiles=inputs["plane_tiles"],
            drawn_tiles=inputs["drawn_tiles"],
            outcomes=outcomes,
            tool=data["tool"],
            reference=reference["name"],
            reference_model_file=reference["model_file"],
            mask_region=inputs["mask_region"],
        )


@dataclass(frozen=True)
class ReferenceOutputs:
    """ONNX Runtime CPU FP32 on the planes and on the drawn tiles, and its speed."""

    run: Run
    drawn: np.ndarray
    tiles_per_second: dict[int, float]


def run_candidate(
    backend: Backend, planes: list[Plane], tiles: np.ndarray, reference: ReferenceOutputs, bundle: Bundle, s: Settings
) -> CandidateResult:
    """Compare one backend with the reference on planes and drawn tiles, time it, and judge it."""
    run = run_backend(backend.predict, planes, bundle, max(s.batches))
    result = compare(reference.run, run, planes, bundle.threshold)
    drawn = float(np.abs(np.asarray(backend.predict(tiles)) - reference.drawn).max())
    result = replace(result, tile_max_abs_diff=max(result.tile_max_abs_diff, drawn))
    tolerance = TOLERANCES["fp32_static" if backend.name == "opencv" else backend.precision]
    return CandidateResult(
        backend=backend.name,
        precision=backend.precision,
        model_file=Path(backend.model_path).name,
        providers=tuple(backend.providers) if hasattr(backend, "providers") else None,
        agreement=result,
        drawn_tile_max_abs_diff=drawn,
        tiles_per_second={b: tiles_per_second(backend.predict, tiles, b, s.repeats) for b in s.batches},
        tolerance=tolerance,
        failures=tuple(failures(result, tolerance)),
    )


def reference_outputs(bundle: Bundle, planes: list[Plane], tiles: np.ndarray, s: Settings) -> ReferenceOutputs:
    """ONNX Runtime CPU FP32 on the planes and drawn tiles, and its speed."""
    predict = session_predictor(open_session(bundle.model_path("fp32"), CPU_ONLY, s.threads), bundle.vessel_index)
    run: Run = run_backend(predict, planes, bundle, max(s.batches))
    speed = {b: tiles_per_second(predict, tiles, b, s.repeats) for b in s.batches}
    return ReferenceOutputs(run, predict(tiles), speed)


def run_candidates(
    bundle: Bundle, planes: list[Plane], tiles: np.ndarray, reference: ReferenceOutputs, settings: Settings
) -> dict[str, Outcome]:
    """Every candidate's outcome, in :data:`CANDIDATES` order."""
    outcomes: dict[str, Outcome] = {}
    for kind, precision in CANDIDATES:
        name = f"{kind}_{precision}"
        key = source_key(kind, precision)
        if not bundle.has(key):
            outcomes[name] = NotRun(f"{PRECISION_FILES[key]} not in the bundle")
            continue
        try:
            backend = open_candidate(bundle, kind, precision, settings)
        except LookupError as exc:  # the library or device is not here: nothing to judge
            outcomes[name] = NotRun(str(exc.args[0]))
            continue
        except (BackendError, BundleError, OSError) as exc:
            outcomes[name] = RunError(str(exc))
            continue
        try:
            outcomes[name] = run_candidate(backend, planes, tiles, reference, bundle, settings)
        except (BackendError, RuntimeError, ValueError) as exc:
            outcomes[name] = RunError(f"{exc.__class__.__name__}: {exc}")
    return outcomes


def run_self_test(bundle: Bundle, settings: Settings = Settings()) -> SelfTestReport:
    """Every candidate this machine can run vs ONNX Runtime CPU FP32; the ``self-test.json`` report."""
    planes = synthetic_planes(bundle, settings.images, settings.image_size)
    tiles = drawn_tiles(bundle, settings.drawn_tiles)
    reference = reference_outputs(bundle, planes, tiles, settings)
    return SelfTestReport(
        bundle_name=str(bundle.meta.get("name", bundle.root.name)),
        bundle_path=str(bundle.root),
        reference_tiles_per_second=reference.tiles_per_second,
        images=tuple(p.name for p in planes),
        image_size=settings.image_size,
        plane_tiles=int(reference.run.tiles.shape[0]),
        drawn_tiles=int(tiles.shape[0]),
        outcomes=run_candidates(bundle, planes, tiles, reference, settings),
    )


def format_table(report: SelfTestReport) -> str:
    """The self-test as text: one row per candidate, then what was skipped or failed and why."""
    speed_head = " ".join(f"{f'b{b} t/s':>9}" for b in report.reference_tiles_per_second)
    columns = f"{'max|Δp|':>9} {'agree %':>9} {'ΔMIoU':>7} {'ΔF1':>7}"
    header = f"{'candidate':<12} {'providers':<22} {columns} {speed_head}  result"
    lines = [f"reference: {report.reference}", header, "-" * len(header)]
    ref_speed = " ".join(f"{v:>9.1f}" for v in report.reference_tiles_per_second.values())
    lines.append(f"{'reference':<12} {'CPUExecutionProvider':<22} {'-':>9} {'-':>9} {'-':>7} {'-':>7} {ref_speed}")
    for name, r in report.results.items():
        providers = ",".join(p.replace("ExecutionProvider", "") for p in r.providers or ()) or r.backend
        a = r.agreement
        d_miou = "-" if a.miou_delta_points is None else f"{a.miou_delta_points:+.3f}"
        d_f1 = "-" if a.f1_delta_points is None else f"{a.f1_delta_points:+.3f}"
        speed = " ".join(f"{v:>9.1f}" for v in r.tiles_per_second.values())
        verdict = "ok" if r.passed else "FAIL: " + "; ".join(r.failures)
        lines.append(
            f"{name:<12} {providers[:22]:<22} {a.worst_abs_diff:>9.3g} {100 * a.mask_agreement:>9.4f} {d_miou:>7} "
            f"{d_f1:>7} {speed}  {verdict}"
        )
    lines += [f"{name:<12} not run: {why}" for name, why in report.skipped.items()]
    lines += [f"{name:<12} ERROR: {why}" for name, why in report.errors.items()]
    lines.append("PASS" if report.passed else "FAIL")
    return "\n".join(lines)


def self_test(bundle: Bundle, out_dir: Path, settings: Settings = Settings()) -> tuple[int, SelfTestReport]:
    """Run, print the table, write ``out_dir/self-test.json``; returns (exit status, report)."""
    report = run_self_test(bundle, settings)
    print(format_table(report))
    write_json(Path(out_dir) / SELF_TEST_JSON, report.to_json())
    return (ExitStatus.OK if report.passed else ExitStatus.FAILED), report


def command(bundle_dir: Path, out_dir: Path, threads: int | None, prog: str) -> int:
    """``fundus-infer --self-test``: exit status 0 pass, 1 outside tolerance or a backend failed, 2 unusable setup."""
    from fundus_vessels.runtime.bundle import load_bundle

    try:
        bundle = load_bundle(bundle_dir)
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        status, _ = self_test(bundle, out_dir, Settings(threads=threads))
    except (BundleError, OSError) as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return ExitStatus.USAGE
    return status
