"""INT8: calibration sets from real preprocessed tiles, QDQ ONNX, accuracy gate and report."""
