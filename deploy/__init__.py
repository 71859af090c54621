"""From a pruned run to a model on a device, in four parts (no Prefect anywhere here).

- `export/`: compact, export and verify ONNX variants of a finished run (torch, onnx).
- `measure/`: onnxruntime CPU benchmarks of those variants on target profiles, sizes, MACs and their report.
- `edge/`: the device side: registry, publish, pull, verify, predict, roll back, serve (no torch).
- `decisions/`: what a pipeline run decides: the variant to publish and its summary, and the release gate.

`transfer.py` moves stage outputs between workers through any fsspec URL; `errors.py` holds DeployError and its
kinds, shared by export, measure and decisions. Both stay at the top, since every part uses them.
"""
