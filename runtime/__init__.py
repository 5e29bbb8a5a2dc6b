"""Lean inference path for fundus vessel segmentation (numpy, OpenCV, ONNX Runtime; never torch)."""
