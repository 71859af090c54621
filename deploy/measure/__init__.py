"""Stage 6: onnxruntime CPU benchmarks of exported models (one timing loop), sizes, FLOPs and the report."""
