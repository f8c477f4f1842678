"""What machine and BLAS a benchmark run measured: CPU model and SIMD flags, the BLAS library,
version and kernel in use (threadpoolctl), and the environment variables forcing a kernel.

The same NumPy wheel picks its OpenBLAS kernel from the CPU at load time (``SkylakeX`` on an
AVX-512 machine); ``OPENBLAS_CORETYPE`` overrides that choice, and with ``OPENBLAS_L2_SIZE`` some
environments force an older kernel that a user's machine would never pick. Published figures
are run with both unset for that command only::

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE pytest benchmarks/ --benchmark

Imports no minigan code; threadpoolctl only inspects libraries already loaded (NumPy's
OpenBLAS, PyTorch's OpenMP), so call :func:`blas_libraries` after NumPy and torch are imported.
"""

from __future__ import annotations

import os
import platform
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

# Variables that change which compute kernel a library runs (not merely its thread count).
KERNEL_OVERRIDES = (
    "OPENBLAS_CORETYPE",
    "OPENBLAS_L2_SIZE",
    "MKL_ENABLE_INSTRUCTIONS",
    "MKL_DEBUG_CPU_TYPE",
    "ATEN_CPU_CAPABILITY",
    "NPY_DISABLE_CPU_FEATURES",
)
_SIMD = re.compile(r"^(sse\S*|ssse3|avx\S*|fma|f16c|amx\S*|asimd\S*|sve\S*|neon)$")


def cpu_model(cpuinfo: str | None = None) -> str:
    """The CPU's model name ("AMD EPYC 9R45 ..."), from /proc/cpuinfo where there is one."""
    text = _cpuinfo() if cpuinfo is None else cpuinfo
    for line in text.splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def cpu_flags(cpuinfo: str | None = None) -> list[str]:
    """The SIMD flags of the CPU (sse*, avx*, fma, amx*, asimd, sve, ...), sorted.

    >>> cpu_flags("flags\\t: fpu sse2 avx2 fma avx512f pse\\n")
    ['avx2', 'avx512f', 'fma', 'sse2']
    """
    text = _cpuinfo() if cpuinfo is None else cpuinfo
    for line in text.splitlines():
        if line.startswith(("flags", "Features")):
            words = line.split(":", 1)[1].split()
            return sorted({w for w in words if _SIMD.match(w)})
    return []


def _cpuinfo() -> str:
    try:
        return Path("/proc/cpuinfo").read_text()
    except OSError:
        return ""


def blas_libraries() -> list[dict[str, Any]]:
    """The BLAS (and OpenMP) libraries loaded in this process: API, version, kernel
    (``architecture``), threads and file name, as threadpoolctl reports them."""
    from threadpoolctl import threadpool_info

    keep = ("user_api", "internal_api", "version", "architecture", "num_threads", "prefix")
    return [
        {**{k: info.get(k) for k in keep}, "file": Path(info.get("filepath", "")).name}
        for info in threadpool_info()
    ]


def describe_blas(libraries: list[Mapping[str, Any]]) -> str:
    """One phrase per BLAS library: "openblas 0.3.31 (SkylakeX kernel, 2 threads)".

    >>> describe_blas([{"user_api": "blas", "internal_api": "openblas", "version": "0.3.31",
    ...                 "architecture": "Haswell", "num_threads": 2}])
    'openblas 0.3.31 (Haswell kernel, 2 threads)'
    >>> describe_blas([])
    'no BLAS library loaded'
    """
    blas = [lib for lib in libraries if lib.get("user_api") == "blas"]
    if not blas:
        return "no BLAS library loaded"
    parts = []
    for lib in blas:
        detail = [f"{lib['architecture']} kernel"] if lib.get("architecture") else []
        if lib.get("num_threads") is not None:
            detail.append(f"{lib['num_threads']} threads")
        name = f"{lib.get('internal_api', '?')} {lib.get('version') or ''}".strip()
        parts.append(f"{name} ({', '.join(detail)})" if detail else name)
    return "; ".join(parts)


def kernel_overrides(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment variables of :data:`KERNEL_OVERRIDES` that are set.

    >>> kernel_overrides({"OPENBLAS_CORETYPE": "Haswell", "OPENBLAS_NUM_THREADS": "2"})
    {'OPENBLAS_CORETYPE': 'Haswell'}
    """
    env = os.environ if environ is None else environ
    return {k: env[k] for k in KERNEL_OVERRIDES if env.get(k)}


def override_warning(overrides: Mapping[str, str]) -> str | None:
    """The warning to print when a variable forces a kernel (None when none does).

    >>> print(override_warning({"OPENBLAS_CORETYPE": "Haswell"}))  # doctest: +ELLIPSIS
    WARNING: OPENBLAS_CORETYPE=Haswell forces a ...`env -u OPENBLAS_CORETYPE pytest ...
    """
    if not overrides:
        return None
    listed = " ".join(f"{k}={v}" for k, v in overrides.items())
    unset = " ".join(f"-u {k}" for k in overrides)
    return (
        f"WARNING: {listed} forces a compute kernel a user's machine would not pick; these "
        f"figures are not what users get. Run published figures with `env {unset} "
        "pytest benchmarks/ --benchmark`."
    )


def describe_machine() -> dict[str, Any]:
    """Everything above, for a results JSON."""
    return {
        "device": cpu_model(),
        "cpu_flags": cpu_flags(),
        "blas": blas_libraries(),
        "kernel_overrides": kernel_overrides(),
    }
