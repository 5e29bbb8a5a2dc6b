"""What ``fundus-calib`` can build, without onnx: its parser reads these before the 'calib' extra loads.

:mod:`fundus_vessels.calib.quantize` maps the method names to ONNX Runtime's calibrators.
"""

from __future__ import annotations

METHOD_NAMES = ("entropy", "minmax", "percentile")
TARGETS = ("tensorrt", "cpu")
# bundle precision key and file name of each target's INT8 model
TARGET_PRECISION = {"tensorrt": "int8", "cpu": "int8_cpu"}
TARGET_FILES = {"tensorrt": "model.int8.onnx", "cpu": "model.int8cpu.onnx"}
# calibration method of each target when none is given (measured on the shipped model)
# the shipped bundles' TensorRT files use percentile (scripts/ship_model.sh): on the fine-tuned
# unet-drive-chase entropy missed the held-out gate (99.49 % < 99.5 %)
DEFAULT_METHODS = {"tensorrt": "entropy", "cpu": "minmax"}
