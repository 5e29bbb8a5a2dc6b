"""Photograph → vessel probability, mask and FOV with one backend: the runtime's whole job."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

import numpy as np

from fundus_vessels.runtime.backends import Backend, create_backend
from fundus_vessels.runtime.bundle import Bundle, load_bundle
from fundus_vessels.runtime.bundle_schema import WHOLE_MULTIPLE
from fundus_vessels.runtime.fov import fov_from_image
from fundus_vessels.runtime.imageio import read_image
from fundus_vessels.runtime.inference import DEFAULT_BATCH, fits_whole, predict_plane, predict_whole
from fundus_vessels.runtime.preprocess import preprocess
from fundus_vessels.runtime.scale import ScaleDecision, decide_scale, resample, resample_back

# "auto": computed from the photograph; None / "none": every pixel; an array: a given mask
FovSpec = str | np.ndarray | None


@dataclass
class Result:
    """Segmentation of one image; every map has the input's height and width."""

    probability: np.ndarray  # float32 vessel probability, not masked (0 in tiles holding no FOV pixel)
    mask: np.ndarray  # bool, probability >= threshold inside the FOV
    fov: np.ndarray  # bool
    vessel_fraction: float  # vessel pixels / FOV pixels
    timings: dict[str, float] = field(default_factory=dict)  # seconds per stage
    # how the photograph was resampled for the model
    scale: ScaleDecision = field(default_factory=lambda: ScaleDecision(1.0, "none", None))
    source: str | None = None  # the file segmented, when segment() was given a path
    photo: np.ndarray | None = field(default=None, repr=False)  # the photograph (for save()'s overlay)

    def save(self, out_dir: str | os.PathLike, kinds: tuple[str, ...] | None = None, stem: str | None = None) -> dict:
        """Write fundus-infer's ``<stem>_mask/prob/overlay.png`` into ``out_dir``; see :mod:`.result_files`."""
        from fundus_vessels.runtime.result_files import save_result

        return save_result(self, out_dir, kinds, stem)

    def to_dict(self) -> dict:
        """This image's results.csv row (same columns, quality graded as fundus-infer does)."""
        from fundus_vessels.runtime.result_files import result_row

        return result_row(self)


def resolve_fov(image: np.ndarray, fov: FovSpec) -> np.ndarray:
    """The boolean FOV mask for ``image`` from a :data:`FovSpec`."""
    shape = image.shape[:2]
    if isinstance(fov, np.ndarray):
        if fov.shape[:2] != shape:
            raise ValueError(f"FOV mask is {fov.shape[1]}x{fov.shape[0]}, image is {shape[1]}x{shape[0]}")
        return fov.astype(bool) if fov.ndim == 2 else fov.any(axis=2)
    if fov is None or fov == "none":
        return np.ones(shape, dtype=bool)
    if fov == "auto":
        return fov_from_image(image)
    raise ValueError(f"fov must be 'auto', 'none', None or a mask array, got {fov!r}")


class Segmenter:
    """A bundle bound to a backend; :meth:`segment` runs preprocess → tiles → stitch → threshold.

    A model-scale plane that fits ``model.json``'s ``tiling.whole_image`` runs in one pass instead of
    tiles on backends that take any input size (ONNX Runtime CPU FP32, OpenCV DNN; the C++ binary too).

    Args:
        bundle: a loaded :class:`Bundle` or its folder (default: the shipped model).
        backend: ``auto``, ``ort``, ``trt``, ``opencv`` or ``torch``.
        precision: ``fp32``, ``fp16`` or ``int8`` (the bundle file, sha256-checked).
        threads: intra-op threads for the backend (None: the library's default).
        batch: tiles per backend call; memory holds one batch plus two stitching planes.
        threshold: vessel if probability >= threshold (default: ``model.json``).
        checkpoint: training checkpoint for the ``torch`` backend.
        url: Triton server for the ``triton`` backend (``[grpc://|http://]host:port[/model]``).
        skip_outside_fov: do not run tiles that hold no FOV pixel (their probability is 0; the
            mask and every pixel inside the FOV are unchanged). A 3504x2336 photograph with
            the usual dark side bands runs ~40 % fewer tiles, in ~35 % less time.
        scale: ``"auto"`` (resample so the FOV diameter matches ``model.json``'s reference), ``"none"``
            or a fixed factor; see :mod:`fundus_vessels.runtime.scale`.
    """

    def __init__(
        self,
        bundle: Bundle | str | os.PathLike | None = None,
        backend: str = "auto",
        precision: str = "fp32",
        threads: int | None = None,
        batch: int = DEFAULT_BATCH,
        threshold: float | None = None,
        checkpoint: str | os.PathLike | None = None,
        skip_outside_fov: bool = True,
        url: str | None = None,
        scale: str | float = "auto",
    ) -> None:
        if batch < 1:
            raise ValueError(f"batch must be >= 1, got {batch}")
        self.bundle = bundle if isinstance(bundle, Bundle) else load_bundle(bundle)
        self.backend: Backend = create_backend(backend, self.bundle, precision, threads, checkpoint, url)
        self.batch = batch
        self.threshold = self.bundle.threshold if threshold is None else float(threshold)
        self.skip_outside_fov = skip_outside_fov
        self.scale = scale

    def whole_image(self, shape: tuple[int, ...]) -> bool:
        """Whether a model-scale plane of ``shape`` runs in one pass (``model.json`` ``tiling.whole_image``
        and a backend taking any size), not as tiles."""
        limit = self.bundle.whole_image
        return bool(getattr(self.backend, "any_size", False)) and fits_whole(shape, limit, WHOLE_MULTIPLE)

    def segment(self, image: np.ndarray | str | os.PathLike, fov: FovSpec = "auto") -> Result:
        """Segment an RGB(A) or gray photograph of any size and bit depth, or the image file at a path."""
        start = time.perf_counter()
        source = None
        if not isinstance(image, np.ndarray):
            source, image = os.fspath(image), read_image(image)
        fov_mask = resolve_fov(image, fov)
        decision = decide_scale(fov_mask, self.bundle.scale, self.scale)
        plane = preprocess(resample(image, decision.factor), self.bundle.preprocess)
        model_fov = resample(fov_mask, decision.factor, "mask")
        prepared = time.perf_counter()
        bundle, region = self.bundle, model_fov if self.skip_outside_fov else None
        if self.whole_image(plane.shape):
            probability = predict_whole(plane, self.backend.predict, WHOLE_MULTIPLE)
        else:
            probability = predict_plane(plane, self.backend.predict, bundle.tile, bundle.overlap, self.batch, region)
        del plane, model_fov
        probability = resample_back(probability, image.shape)
        inferred = time.perf_counter()
        mask = (probability >= self.threshold) & fov_mask
        inside = int(fov_mask.sum())
        fraction = float(mask.sum()) / inside if inside else 0.0
        done = time.perf_counter()
        timings = {"preprocess": prepared - start, "inference": inferred - prepared, "postprocess": done - inferred}
        return Result(probability, mask, fov_mask, fraction, timings, decision, source, image)


def segment(
    image: np.ndarray, bundle: Bundle | str | os.PathLike | None = None, fov: FovSpec = "auto", **kwargs: object
) -> Result:
    """One-off convenience: build a :class:`Segmenter` (``kwargs`` as its arguments) and segment."""
    return Segmenter(bundle, **kwargs).segment(image, fov)
