"""From a pruned run to a model on a device, in four parts (no Prefect anywhere here).

- `export/`: compact, export and verify ONNX variants of a finished run (torch, onnx).
- `bench/`: onnxruntime CPU benchmarks of those variants and their report.
- `edge/`: the device side: registry, publish, pull, verify, predict, roll back, serve (no torch).
- `pipeline/`: what the Prefect pipeline in flows/ needs beyond the two: the published-variant choice and
  the stage exchange between workers, kept here so the flows stay thin and Prefect-free code testable.

`errors.py` stays at the top: DeployError and its kinds are shared by export, bench and pipeline.
"""
