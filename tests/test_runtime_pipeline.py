"""Segmenter: whole images of any size, FOV handling, thresholds, bounded memory, no torch."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from runtime_fixtures import small_fundus

from fundus_vessels.runtime.pipeline import Segmenter, resolve_fov, segment

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def segmenter(tiny_bundle: Path) -> Segmenter:
    return Segmenter(tiny_bundle, backend="ort", batch=4)


def test_result_maps_have_the_input_size(segmenter: Segmenter) -> None:
    image = small_fundus(300, 280)
    result = segmenter.segment(image)
    assert result.probability.shape == result.mask.shape == result.fov.shape == (300, 280)
    assert result.probability.dtype == np.float32 and result.mask.dtype == bool
    assert not (result.mask & ~result.fov).any(), "mask is 0 outside the FOV"
    expected = (result.mask.sum() / result.fov.sum()) if result.fov.any() else 0.0
    assert result.vessel_fraction == pytest.approx(expected)
    assert set(result.timings) == {"preprocess", "inference", "postprocess"}


@pytest.mark.parametrize("shape", [(1, 1), (7, 5, 3), (20, 300, 4), (255, 257, 3)])
def test_images_smaller_than_a_tile_work(segmenter: Segmenter, shape: tuple[int, ...]) -> None:
    image = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
    assert segmenter.segment(image).probability.shape == shape[:2]


def test_threshold_override_and_fov_choices(tiny_bundle: Path) -> None:
    image = small_fundus(260, 260)
    everything = Segmenter(tiny_bundle, backend="ort", threshold=0.0).segment(image, fov=None)
    assert everything.mask.all() and everything.fov.all() and everything.vessel_fraction == 1.0
    given = np.zeros((260, 260), bool)
    given[100:150, 100:150] = True
    masked = Segmenter(tiny_bundle, backend="ort", threshold=0.0).segment(image, fov=given)
    np.testing.assert_array_equal(masked.mask, given)


def test_fov_mask_of_another_size_is_an_error() -> None:
    with pytest.raises(ValueError, match="FOV mask"):
        resolve_fov(np.zeros((10, 10, 3), np.uint8), np.ones((10, 11), bool))


def test_ort_and_torch_pipelines_agree(tiny_bundle: Path, tiny_checkpoint: Path) -> None:
    image = small_fundus(300, 280, seed=2)
    ort_prob = segment(image, tiny_bundle, backend="ort").probability
    torch_prob = segment(image, tiny_bundle, backend="torch", checkpoint=tiny_checkpoint).probability
    np.testing.assert_allclose(ort_prob, torch_prob, atol=1e-4)


def test_runtime_never_imports_torch() -> None:
    code = (
        "import sys, fundus_vessels.runtime.cli, fundus_vessels.runtime.pipeline, fundus_vessels.runtime.backends.ort, "
        "fundus_vessels.runtime.backends.opencv_dnn, fundus_vessels.runtime.backends.trt; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'torch'))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


BIG_IMAGE_SCRIPT = """
import json, sys
import numpy as np
from fundus_vessels.runtime.pipeline import Segmenter
image = np.random.default_rng(0).integers(0, 256, (2336, 3504, 3), dtype=np.uint8)
result = Segmenter(sys.argv[1], backend="ort", batch=8).segment(image)
# VmHWM, not ru_maxrss: Linux carries ru_maxrss over fork + exec, so it would report a large pytest parent's peak
status = dict(line.split(":", 1) for line in open("/proc/self/status").read().splitlines() if ":" in line)
peak_mb = int(status["VmHWM"].split()[0]) / 1024
print(json.dumps({"shape": list(result.probability.shape), "peak_mb": peak_mb}))
"""


@pytest.mark.slow
def test_big_image_stays_in_bounded_memory(tiny_bundle: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-c", BIG_IMAGE_SCRIPT, str(tiny_bundle)], cwd=REPO, capture_output=True, text=True, check=True
    )
    report = json.loads(out.stdout)
    assert report["shape"] == [2336, 3504]
    assert report["peak_mb"] < 1000, report


def test_tiles_outside_the_fov_are_skipped_without_changing_the_mask(tiny_bundle: Path) -> None:
    image = np.zeros((300, 900, 3), np.uint8)  # a photograph with wide dark side bands, like 3504x2336 ones
    image[:, 300:600] = small_fundus(300, 300, seed=4)
    calls = {True: 0, False: 0}
    results = {}
    for skip in (True, False):
        segmenter = Segmenter(tiny_bundle, backend="ort", skip_outside_fov=skip)
        predict = segmenter.backend.predict

        def counting(tiles: np.ndarray, predict=predict, skip=skip) -> np.ndarray:
            calls[skip] += len(tiles)
            return predict(tiles)

        segmenter.backend.predict = counting
        results[skip] = segmenter.segment(image)
    assert 0 < calls[True] < calls[False]
    fov = results[True].fov
    assert fov.any() and not fov[:, :250].any()
    np.testing.assert_array_equal(results[True].mask, results[False].mask)
    np.testing.assert_array_equal(results[True].probability[fov], results[False].probability[fov])


# -- whole-image passes (model.json tiling.whole_image) -----------------------------------------


@pytest.fixture(scope="module")
def whole_bundle(tiny_bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny bundle with model.dynamic.onnx and whole-image passes up to 320 px."""
    import shutil

    from fundus_vessels.export.onnx_export import write_dynamic_variant
    from fundus_vessels.runtime.bundle import load_bundle

    root = Path(shutil.copytree(tiny_bundle, tmp_path_factory.mktemp("whole") / "bundle"))
    write_dynamic_variant(load_bundle(root), 320)
    return root


def test_whole_image_setting_is_honoured(whole_bundle: Path) -> None:
    from fundus_vessels.runtime.bundle_schema import WHOLE_MULTIPLE
    from fundus_vessels.runtime.inference import predict_plane, predict_whole
    from fundus_vessels.runtime.preprocess import preprocess

    seg = Segmenter(whole_bundle, backend="ort", scale="none")
    assert seg.backend.model_path.name == "model.dynamic.onnx" and seg.backend.any_size
    bundle, predict = seg.bundle, seg.backend.predict
    for shape, whole in (((300, 290), True), ((320, 305), True), ((321, 300), False), ((260, 420), False)):
        image = small_fundus(*shape, seed=3)
        plane = preprocess(image, bundle.preprocess)
        assert seg.whole_image(plane.shape) is whole, shape
        got = seg.segment(image, fov=None).probability
        tiled = predict_plane(plane, predict, bundle.tile, bundle.overlap)
        if whole:
            np.testing.assert_array_equal(got, predict_whole(plane, predict, WHOLE_MULTIPLE))
            assert np.abs(got - tiled).max() > 0, "one pass, not the tiles"
        else:
            np.testing.assert_array_equal(got, tiled)


def test_whole_image_off_without_the_setting_or_an_any_size_backend(tiny_bundle: Path, whole_bundle: Path) -> None:
    image = small_fundus(300, 280)
    plain = Segmenter(tiny_bundle, backend="ort")
    assert plain.backend.model_path.name == "model.onnx" and not plain.whole_image((300, 280))
    opencv = Segmenter(whole_bundle, backend="opencv")  # the static file takes any size in OpenCV DNN
    assert opencv.whole_image((300, 280))
    ort = Segmenter(whole_bundle, backend="ort")
    np.testing.assert_allclose(opencv.segment(image).probability, ort.segment(image).probability, atol=1e-4)


def test_probability_png_rounds_like_numpy() -> None:
    from fundus_vessels.runtime.outputs import probability_png

    k = np.arange(256, dtype=np.float32)
    ties = ((k + 0.5) / 255).astype(np.float32)
    values = [ties, np.nextafter(ties, 2), np.nextafter(ties, -2), k / 255, np.float32([-0.5, 0, 1, 1.5, 1e-9])]
    values.append(np.random.default_rng(0).random(5000, dtype=np.float32) * 1.2 - 0.1)
    probability = np.concatenate(values).reshape(1, -1)
    expected = np.rint(np.clip(probability, 0.0, 1.0) * 255.0).astype(np.uint8)
    np.testing.assert_array_equal(probability_png(probability), expected)
