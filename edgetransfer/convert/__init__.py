"""From a checkpoint to an ONNX model for the device: export, graph rewrites, quantization,
and the checks an ONNX file passes before onnxruntime loads it."""
