"""What a benchmark ran on: CPU model and SIMD flags, cores, onnxruntime version and provider."""

from __future__ import annotations

import os
import platform
from pathlib import Path

SIMD = ("sse4_2", "avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl", "avx512_vnni", "avx_vnni",
        "avx512_bf16", "amx_tile", "amx_int8", "amx_bf16", "asimd", "sve", "asimddp", "i8mm")


def _cpuinfo() -> dict[str, str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return {}
    fields = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    return fields


def system_info(provider: str = "CPUExecutionProvider") -> dict:
    import numpy
    import onnxruntime

    info = _cpuinfo()
    flags = set((info.get("flags") or info.get("Features") or "").split())
    return {"cpu": info.get("model name") or platform.processor() or platform.machine(),
            "machine": platform.machine(), "cores": os.cpu_count(), "simd_flags": [f for f in SIMD if f in flags],
            "onnxruntime": onnxruntime.__version__, "provider": provider, "numpy": numpy.__version__,
            "python": platform.python_version(), "platform": platform.platform()}
