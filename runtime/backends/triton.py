"""Triton Inference Server backend: tiles go to a server through ``tritonclient``; all else stays local.

Preprocessing, tiling, the FOV and stitching run here (the same code as every backend); only
``predict`` crosses the network. The server's model must be the local bundle's: its
``config.pbtxt`` parameters (written by ``fundus-export triton``) name the sha256 of the served
ONNX file and of ``model.json``, and both are checked against the local bundle before any tile
is sent. ``tritonclient`` is imported only when this backend is chosen (the ``triton`` extra).

URL: ``[grpc://|http://]host:port[/model]``; gRPC when no scheme is given; the model defaults to
the bundle's name (FP32, onnxruntime) or ``<name>_trt_<precision>``.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import numpy as np

from fundus_vessels.runtime.backends.base import BackendError, vessel_channel
from fundus_vessels.runtime.bundle import MODEL_JSON, Bundle, sha256_file
from fundus_vessels.runtime.extras import extra_hint

# config.pbtxt "parameters" written by fundus-export triton and checked here
PARAM_MODEL_SHA = "fundus_model_sha256"
PARAM_MODEL_JSON_SHA = "fundus_model_json_sha256"
PARAM_PRECISION = "fundus_precision"
PROTOCOLS = {"grpc": "tritonclient.grpc", "http": "tritonclient.http"}


def triton_model_name(bundle: Bundle, precision: str = "fp32", engine: bool | None = None) -> str:
    """A repository model: ``<name>`` (ONNX FP32) or ``<name>_trt_<precision>`` (TensorRT engines).

    ``engine`` None: the ONNX model for FP32, the engines for FP16 and INT8.
    """
    name = str(bundle.meta.get("name", bundle.root.name))
    engine = precision != "fp32" if engine is None else engine
    return f"{name}_trt_{precision}" if engine else name


@dataclass(frozen=True)
class TritonUrl:
    """Where the server listens and which of its models serves the tiles (None: the default name)."""

    protocol: str
    address: str
    model: str | None = None

    @classmethod
    def parse(cls, url: str) -> TritonUrl:
        scheme, sep, rest = url.partition("://")
        protocol, rest = (scheme, rest) if sep else ("grpc", url)
        if protocol not in PROTOCOLS:
            raise BackendError(f"--url {url}: scheme must be grpc:// or http://, got {protocol}://")
        address, _, model = rest.partition("/")
        if not address:
            raise BackendError(f"--url {url}: no host:port")
        return cls(protocol, address, model.strip("/") or None)


def import_client(protocol: str) -> ModuleType:
    """``tritonclient.grpc`` or ``tritonclient.http``, or a :class:`BackendError` naming the extra."""
    try:
        return importlib.import_module(PROTOCOLS[protocol])
    except ImportError as exc:
        raise BackendError(
            f"backend 'triton' {extra_hint('triton', (exc.name or 'tritonclient').split('.')[0])}"
        ) from exc


def served_parameters(config: dict) -> dict[str, str]:
    """``parameters`` of a model configuration as plain strings (gRPC and HTTP JSON alike)."""
    config = config.get("config", config)
    return {k: str(v.get("string_value", "")) for k, v in config.get("parameters", {}).items()}


class TritonBackend:
    """Sends (n, 1, t, t) float32 tiles to a Triton model, at most ``max_batch_size`` per request."""

    name = "triton"

    def __init__(self, bundle: Bundle, precision: str = "fp32", threads: int | None = None, url: str | None = None):
        if not url:
            raise BackendError("backend 'triton' needs --url, e.g. grpc://localhost:8001")
        target = TritonUrl.parse(url)
        self.precision = precision
        self.model_path: Path = bundle.model_path(precision)  # the local twin of the served file
        self.model = target.model or triton_model_name(bundle, precision)
        self.label = f"{url} model {self.model}"
        self._client_module = import_client(target.protocol)
        self.client = self._client_module.InferenceServerClient(target.address)
        config = self._model_config()
        self._check_same_model(bundle, served_parameters(config))
        config = config.get("config", config)
        self.max_batch = int(config.get("max_batch_size", 0)) or 1
        self.input_name = bundle.spec.input.name
        self.output_name = bundle.spec.output.name
        self.vessel_index = bundle.vessel_index

    def _model_config(self) -> dict:
        try:
            if not self.client.is_model_ready(self.model):
                raise BackendError(f"{self.label}: not ready on the server (is it loaded?)")
            if self._client_module.__name__.endswith("grpc"):
                return self.client.get_model_config(self.model, as_json=True)
            return self.client.get_model_config(self.model)
        except BackendError:
            raise
        except Exception as exc:  # tritonclient raises InferenceServerException and transport errors
            raise BackendError(f"{self.label}: cannot reach the server ({exc})") from exc

    def _check_same_model(self, bundle: Bundle, params: dict[str, str]) -> None:
        """Refuse a server model other than the local bundle's (preprocessing and tiling come from it)."""
        expected = {
            PARAM_MODEL_SHA: sha256_file(self.model_path),
            PARAM_MODEL_JSON_SHA: sha256_file(bundle.root / MODEL_JSON),
            PARAM_PRECISION: self.precision,
        }
        differ = [f"{k} {params.get(k, 'missing')!r} != local {v!r}" for k, v in expected.items() if params.get(k) != v]
        if differ:
            raise BackendError(
                f"{self.label}: not the model of bundle {bundle.root} ({'; '.join(differ)}); "
                "export the bundle with `fundus-export triton` and load that repository"
            )

    def predict(self, tiles: np.ndarray) -> np.ndarray:
        """(n, 1, t, t) float32 tiles -> (n, t, t) vessel probability from the server."""
        parts = [self._infer(tiles[i : i + self.max_batch]) for i in range(0, len(tiles), self.max_batch)]
        return np.concatenate(parts) if len(parts) > 1 else parts[0]

    def _infer(self, tiles: np.ndarray) -> np.ndarray:
        module = self._client_module
        batch = np.ascontiguousarray(tiles, dtype=np.float32)
        request = module.InferInput(self.input_name, list(batch.shape), "FP32")
        request.set_data_from_numpy(batch)
        try:
            result = self.client.infer(self.model, [request], outputs=[module.InferRequestedOutput(self.output_name)])
        except Exception as exc:  # tritonclient's InferenceServerException and transport errors
            raise BackendError(f"{self.label}: inference failed ({exc})") from exc
        return vessel_channel(result.as_numpy(self.output_name), self.vessel_index)
