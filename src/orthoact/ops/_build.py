"""Compiling and loading the fused CPU kernels (``kernels.cpp``).

The kernels are plain C++ with OpenMP and no PyTorch headers, so they build in about 3 seconds with
the system compiler on first use. The shared library is cached under ``$ORTHOACT_CACHE_DIR`` (or
``$XDG_CACHE_HOME/orthoact``, default ``~/.cache/orthoact``) keyed by a hash of the source, the
compiler and the CPU's features, so later processes load it at once. It links ``libgomp.so.1``: in a
process that imported torch this is torch's own OpenMP runtime, so both share one thread pool.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

SOURCE = Path(__file__).with_name("kernels.cpp")
FLAGS = ["-O3", "-march=native", "-fopenmp", "-fPIC", "-shared", "-std=c++17", "-fno-math-errno"]


@dataclass
class BuildInfo:
    library: ctypes.CDLL | None
    path: Path | None
    compiled: bool  # compiled in this process (False: loaded from the cache)
    seconds: float  # time spent compiling or loading
    error: str | None


_lock = threading.Lock()
_info: BuildInfo | None = None


def cache_dir() -> Path:
    root = os.environ.get("ORTHOACT_CACHE_DIR")
    if root:
        return Path(root)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "orthoact"


def _cpu_signature() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features")):
                return line
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _compiler() -> str | None:
    return shutil.which(os.environ.get("CXX", "g++")) or shutil.which("c++")


def _key(compiler: str) -> str:
    version = subprocess.run([compiler, "--version"], capture_output=True, text=True).stdout
    digest = hashlib.sha256()
    for part in (SOURCE.read_bytes(), " ".join(FLAGS).encode(), version.encode(), _cpu_signature().encode()):
        digest.update(part)
    return digest.hexdigest()[:20]


def _configure(lib: ctypes.CDLL) -> ctypes.CDLL:
    i64, ptr, i32 = ctypes.c_int64, ctypes.c_void_p, ctypes.c_int
    lib.oa_forward.argtypes = [i32, i32, ptr, ptr, i64, i64, i64, ptr, i32, i32]
    lib.oa_forward.restype = i32
    lib.oa_backward.argtypes = [i32, i32, ptr, ptr, ptr, ptr, i64, i64, i64, ptr, i32, i32]
    lib.oa_backward.restype = i32
    lib.oa_n_params.argtypes = [i32, i32]
    lib.oa_n_params.restype = i32
    return lib


def _build() -> BuildInfo:
    start = time.perf_counter()
    compiler = _compiler()
    if compiler is None:
        return BuildInfo(None, None, False, 0.0, "no C++ compiler found (install g++ or set CXX)")
    target = cache_dir() / f"kernels-{_key(compiler)}.so"
    compiled = False
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(suffix=".so", dir=target.parent)
        os.close(fd)
        cmd = [compiler, *FLAGS, "-o", tmp, str(SOURCE)]
        result = subprocess.run(cmd, capture_output=True, text=True)
        if result.returncode != 0:
            os.unlink(tmp)
            message = (result.stderr or result.stdout).strip().splitlines()[-5:]
            return BuildInfo(None, None, False, time.perf_counter() - start,
                             "compiling the fused kernels failed: " + " | ".join(message))
        os.replace(tmp, target)  # atomic: concurrent processes never load a half-written file
        compiled = True
    try:
        lib = _configure(ctypes.CDLL(str(target)))
    except OSError as error:
        return BuildInfo(None, target, compiled, time.perf_counter() - start, f"loading {target} failed: {error}")
    return BuildInfo(lib, target, compiled, time.perf_counter() - start, None)


def load() -> BuildInfo:
    """Build (once per machine) and load the kernels; never raises, reports failure in ``error``."""
    global _info
    if _info is None:
        with _lock:
            if _info is None:
                _info = _build()
    return _info
