"""``fundus-export selftest-reference``: the ONNX Runtime CPU FP32 outputs the C++ self-test is held to.

The C++ ``fundus-infer`` has no ONNX Runtime, so its ``--self-test`` cannot compute the reference
the Python self-test computes. This writes it into the bundle instead, once, where ONNX Runtime
runs: ``BUNDLE/selftest/`` with a synthetic fundus photograph (``fundus.png``, its known FOV and
vessels as PNG masks), its preprocessed plane (``plane.npy``: the backends all get this exact
input, so they are compared with each other and not with a second preprocessing), the ONNX Runtime
CPU FP32 probability of that plane (tiled and stitched as the runtime does, ``probability.npy``),
the raw outputs of tiles cropped at seeded places of it (``tiles.npy``, origins in
``reference.json``), and the parity tolerances of :data:`runtime.agreement.TOLERANCES`.
A second, larger photograph (``scaled.png``, its FOV ``scaled_fov.png``) exercises scale normalisation
(:mod:`runtime.scale`): its FOV diameter, the decision of the bundle's ``scale`` rule (or, for a bundle
without one, :data:`SELFTEST_SCALE`'s), the resampled preprocessed plane (``scaled_plane.npy``) and
ONNX Runtime's probability of it brought back to the photograph's size (``scaled_probability.npy``),
under ``scaled`` in ``reference.json``.
``reference.json`` records every file's sha256 and the sha256 of the ``model.onnx`` it was made
from; ``model.json`` records its own (``files.selftest_reference``): a changed file or a
re-exported model is refused, not compared.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import onnxruntime as ort

from fundus_vessels.runtime.agreement import TOLERANCES
from fundus_vessels.runtime.backends.ort import CPU_ONLY, open_session, session_predictor
from fundus_vessels.runtime.bundle import MODEL_JSON, Bundle, load_bundle, sha256_file
from fundus_vessels.runtime.fov import fov_from_image
from fundus_vessels.runtime.imageio import read_binary_mask, read_image, write_bytes, write_image, write_json
from fundus_vessels.runtime.inference import predict_plane
from fundus_vessels.runtime.metrics import SegmentationEvaluator
from fundus_vessels.runtime.preprocess import preprocess
from fundus_vessels.runtime.scale import ScaleConfig, decide_scale, resample, resample_back
from fundus_vessels.runtime.synthetic import make_synthetic_fundus

FORMAT = "fundus-selftest-reference/1"
FILES_KEY = "selftest_reference"  # key in model.json "files"
FOLDER = "selftest"
REFERENCE = "onnxruntime CPU fp32"
IMAGE_SIZE = 320  # 2 x 2 tiles of 256 with overlap 32: every tile seam is crossed
IMAGE_SEED = 0
DRAWN_TILES = 4
DRAWN_SEED = 100
BATCH = 4
SCALED_SIZE = 480  # drawn larger than the reference: shrunk by ~0.67 (area averaging), the probability enlarged back
SCALED_SEED = 1
SELFTEST_SCALE = ScaleConfig(reference_diameter=300.0)  # for a bundle without a scale section


def _write_npy(path: Path, array: np.ndarray) -> None:
    buffer = io.BytesIO()
    np.save(buffer, np.ascontiguousarray(array, dtype="<f4"))
    write_bytes(path, buffer.getvalue())


def drawn_origins(height: int, width: int, tile: int, count: int = DRAWN_TILES, seed: int = DRAWN_SEED) -> list:
    """``count`` seeded top-left corners ``[x, y]`` of tiles inside a ``height`` x ``width`` plane."""
    rng = np.random.default_rng(seed)
    return [[int(rng.integers(0, width - tile + 1)), int(rng.integers(0, height - tile + 1))] for _ in range(count)]


def _entry(path: Path, **extra: object) -> dict:
    return {"path": path.name, "sha256": sha256_file(path), **extra}


def _scaled_case(bundle: Bundle, folder: Path, predict) -> dict:
    """The scale-normalised photograph: drawn, read back, decided, resampled, run and brought back."""
    config = bundle.scale if bundle.scale.enabled else SELFTEST_SCALE
    fundus = make_synthetic_fundus(SCALED_SIZE, SCALED_SIZE, seed=SCALED_SEED)
    write_image(folder / "scaled.png", fundus.image_rgb)
    write_image(folder / "scaled_fov.png", fundus.fov.astype(np.uint8) * 255)
    image = read_image(folder / "scaled.png")
    found = fov_from_image(image)  # as the runtime finds it (runtime/pipeline.py Segmenter.segment)
    decision = decide_scale(found, config)
    plane = preprocess(resample(image, decision.factor), bundle.preprocess)
    region = resample(found, decision.factor, "mask")
    probability = resample_back(predict_plane(plane, predict, bundle.tile, bundle.overlap, BATCH, region), image.shape)
    _write_npy(folder / "scaled_plane.npy", plane)
    _write_npy(folder / "scaled_probability.npy", probability)
    return {
        "image": _entry(folder / "scaled.png", synthetic_seed=SCALED_SEED),
        "fov": _entry(folder / "scaled_fov.png"),
        "scale": config.to_dict(),
        "decision": decision.to_dict() | {"factor": decision.factor},  # the exact factor the plane was made at
        "plane": _entry(folder / "scaled_plane.npy", shape=list(plane.shape)),
        "probability": _entry(folder / "scaled_probability.npy", shape=list(probability.shape), batch=BATCH),
    }


def write_reference(bundle_dir: str | Path, threads: int | None = None) -> Path:
    """Write ``BUNDLE/selftest/`` and register ``reference.json`` in ``model.json``; returns its path."""
    bundle: Bundle = load_bundle(bundle_dir)
    if bundle.tile > IMAGE_SIZE:
        raise ValueError(f"{bundle.root}: tile {bundle.tile} is larger than the {IMAGE_SIZE}px self-test image")
    folder = bundle.root / FOLDER
    folder.mkdir(exist_ok=True)
    fundus = make_synthetic_fundus(IMAGE_SIZE, IMAGE_SIZE, seed=IMAGE_SEED)
    write_image(folder / "fundus.png", fundus.image_rgb)
    write_image(folder / "fov.png", fundus.fov.astype(np.uint8) * 255)
    write_image(folder / "vessels.png", fundus.vessels.astype(np.uint8) * 255)
    # read back, as every runtime will: the reference is of the stored files, not of the arrays drawn
    image = read_image(folder / "fundus.png")
    fov, vessels = read_binary_mask(folder / "fov.png"), read_binary_mask(folder / "vessels.png")
    plane = preprocess(image, bundle.preprocess)
    model = bundle.model_path("fp32")
    predict = session_predictor(open_session(model, CPU_ONLY, threads), bundle.vessel_index)
    probability = predict_plane(plane, predict, bundle.tile, bundle.overlap, BATCH)
    origins = drawn_origins(*plane.shape, bundle.tile)
    crops = np.stack([plane[y : y + bundle.tile, x : x + bundle.tile] for x, y in origins])[:, None]
    tiles = predict(crops.astype(np.float32))
    _write_npy(folder / "plane.npy", plane)
    _write_npy(folder / "probability.npy", probability)
    _write_npy(folder / "tiles.npy", tiles)
    evaluator = SegmentationEvaluator(bundle.threshold)
    evaluator.add("selftest/fundus.png", probability, vessels, fov)
    pooled = evaluator.summary()["pooled"]
    reference = {
        "format": FORMAT,
        "reference": REFERENCE,
        "onnxruntime": ort.__version__,
        "model_file": model.name,
        "model_sha256": sha256_file(model),
        "image": _entry(folder / "fundus.png", synthetic_seed=IMAGE_SEED),
        "fov": _entry(folder / "fov.png"),
        "vessels": _entry(folder / "vessels.png"),
        "plane": _entry(folder / "plane.npy", shape=list(plane.shape)),
        "probability": _entry(folder / "probability.npy", shape=list(probability.shape), batch=BATCH),
        "tiles": _entry(folder / "tiles.npy", shape=list(tiles.shape), seed=DRAWN_SEED),
        "tile_origins_xy": origins,
        "scaled": _scaled_case(bundle, folder, predict),
        "threshold": bundle.threshold,
        "scores": {"miou": pooled["miou"], "f1": pooled["f1"]},
        "tolerances": {k: t.to_json() for k, t in TOLERANCES.items()},
        "command": f"fundus-export selftest-reference --bundle {bundle_dir}",
    }
    path = folder / "reference.json"
    write_json(path, reference)
    bundle.register_file(FILES_KEY, path, format=FORMAT)
    bundle.save()
    print(f"wrote {path} (reference {REFERENCE}, onnxruntime {ort.__version__}); registered in {MODEL_JSON}")
    return path
