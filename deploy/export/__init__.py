"""Stages 4-5: compact a finished run, export its ONNX variants (dense, pruned, compacted, INT8) and verify each."""
