"""Compiling and loading the fused CPU kernels (``kernels/*.cpp``, ``kernels/*.h``).

The kernels are plain C++ with OpenMP and no PyTorch headers. Each family with C++ kernels gets a
shared library of its own (the drivers of ``kernels.cpp`` and the family's header), built with the
system compiler on first use (5-20 seconds each; :func:`load` builds them side by side), so a family
whose kernels fail to build falls back to the reference alone and a new family rebuilds nothing
else. ``families.inc`` is generated from the declaration (the header to include, the table of the
family's variants, the degrees compiled with their own unrolled code), so the C++ never repeats a
number. Each library is cached under ``$ORTHOACT_CACHE_DIR`` (or ``$XDG_CACHE_HOME/orthoact``,
default ``~/.cache/orthoact``) keyed by a hash of its sources, the flags, the compiler and the CPU's
features, so later processes load it at once. A cached library is named by the hash of its own bytes and
found through a small pointer file, so a truncated or altered file is detected before it is loaded
(loading a truncated shared library can crash the process). It links ``libgomp.so.1``: in a process that imported torch this
is torch's own OpenMP runtime, so both share one thread pool.

Nothing here raises: every failure (no source files, no compiler, a compiler that fails or hangs,
a cache folder that is a file, unwritable, full or writable by other users, a truncated or stale
cached library) ends in a family's :class:`BuildInfo` with ``library=None`` and an ``error`` the auto
backend shows once in a warning before it uses the reference implementation for that family. A cached library that fails to
load is rebuilt once; a cache folder other users can write to is never loaded from (the library is
built in a private temporary folder instead).
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shutil
import signal
import stat
import subprocess
import tempfile
import threading
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

KERNEL_DIR = Path(__file__).with_name("kernels")
DRIVER = "kernels.cpp"
SHARED_HEADERS = ("simd.h", "common.h", "envelope.h")  # included by the families (hashed for every library)
# -ffp-contract=fast: a * b + c as one FMA (ISO -std=c++17 turns contraction off), which the sin/cos
# range reduction needs for its accuracy and Horner's rule for its speed.
FLAGS = ["-O3", "-march=native", "-fopenmp", "-fPIC", "-shared", "-std=c++17", "-fno-math-errno", "-ffp-contract=fast"]
ABI_VERSION = 7  # as OA_ABI_VERSION in kernels.cpp: a cached library of another version is rebuilt
BUILD_TIMEOUT_ENV = "ORTHOACT_BUILD_TIMEOUT"
#: ``256`` builds 32-byte vectors (AVX2) even where the CPU has AVX-512 (the default takes 64-byte
#: vectors there); tests use it to check the narrower kernels on an AVX-512 machine.
VECTOR_BITS_ENV = "ORTHOACT_KERNEL_VECTOR_BITS"
DEFAULT_BUILD_TIMEOUT = 300.0  # seconds


#: Degrees whose float32 kernels get their own unrolled code (higher ones take the degree at run time).
SPECIALIZED_DEGREES = range(1, 11)


@dataclass
class BuildInfo:
    """One family's library (or why there is none)."""

    library: ctypes.CDLL | None
    path: Path | None
    compiled: bool  # compiled in this process (False: loaded from the cache)
    seconds: float  # time spent compiling or loading
    error: str | None
    note: str | None = None  # e.g. why the cache folder was not used
    family: str = ""


@dataclass
class Kernels:
    """Every family's library, as :func:`load` left them."""

    families: dict[str, BuildInfo] = field(default_factory=dict)
    seconds: float = 0.0  # wall time of the whole load

    @property
    def error(self) -> str | None:
        """What failed, family by family (``None``: every library is loaded)."""
        errors = [f"{name}: {info.error}" for name, info in self.families.items() if info.error]
        return "; ".join(errors) or None

    @property
    def compiled(self) -> bool:
        """Whether any library was compiled (not loaded from the cache) in this process."""
        return any(info.compiled for info in self.families.values())


_lock = threading.Lock()
_infos: dict[str, BuildInfo] = {}


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


def flags() -> list[str]:
    """The compiler flags: :data:`FLAGS`, and ``-DOA_NO_AVX512`` when ``$ORTHOACT_KERNEL_VECTOR_BITS``
    is 256. 512 (or unset) takes the widest vectors the CPU has (64 bytes with AVX-512, else 32);
    any other value is an error."""
    bits = os.environ.get(VECTOR_BITS_ENV, "").strip()
    if bits not in ("", "256", "512"):
        raise ValueError(f"{VECTOR_BITS_ENV}={bits!r}: expected 256 or 512 (or unset: the widest the CPU has)")
    return FLAGS + (["-DOA_NO_AVX512"] if bits == "256" else [])


def _timeout() -> float:
    try:
        return float(os.environ.get(BUILD_TIMEOUT_ENV, DEFAULT_BUILD_TIMEOUT))
    except ValueError:
        return DEFAULT_BUILD_TIMEOUT


def families_inc(family: str, source: Path | None = None) -> str:
    """The generated C++ of one family's library: its header, ``OA_FAMILIES(X)`` with
    ``X(variant, Struct, nan_at_infinity)`` per variant, and the specialised degrees (headers from
    ``source``, default :data:`KERNEL_DIR`)."""
    from orthoact.ops._common import MAX_KERNEL_DEGREE

    entries = _entries(family)
    lines = ["// Generated by orthoact/ops/_build.py from the family declaration; do not edit.", "#pragma once",
             f"#define OA_MAX_DEGREE {MAX_KERNEL_DEGREE}",
             "#define OA_SPECIALIZED_DEGREES(X) " + " ".join(f"X({d})" for d in SPECIALIZED_DEGREES)]
    lines += [f'#include "{h}"' for h in sorted({str(_header(e, source)) for e in entries})]
    table = " ".join(f"X({e.variant}, {e.kernel.cpp_struct}, {'true' if e.spec.nan_at_infinity else 'false'})"
                     for e in entries)
    lines.append(f"#define OA_FAMILIES(X) {table}")
    return "\n".join(lines) + "\n"


def cpp_families() -> list[str]:
    """The declared families with C++ kernels, in declaration order."""
    from orthoact.ops._common import kernel_table

    return list(dict.fromkeys(e.spec.name for e in kernel_table().values() if e.kernel.cpp_header))


def _entries(family: str) -> list:
    from orthoact.ops._common import kernel_table

    return [e for e in kernel_table().values() if e.spec.name == family and e.kernel.cpp_header]


def _header(entry, source: Path | None = None) -> Path:
    """A family's header, as an absolute path (a family declared outside orthoact may keep its header
    next to its own code)."""
    path = Path(entry.kernel.cpp_header)
    return path if path.is_absolute() else (source or KERNEL_DIR) / path


def _sources(family: str, generated: str) -> list[bytes]:
    """Everything one family's library is built from (raises OSError when a source file is missing)."""
    driver = KERNEL_DIR / DRIVER
    if not driver.is_file():
        raise FileNotFoundError(f"{driver} is missing (is the package installed completely?)")
    files = [driver, *(KERNEL_DIR / h for h in SHARED_HEADERS), *sorted({_header(e) for e in _entries(family)})]
    return [p.name.encode() + b"\0" + p.read_bytes() for p in files] + [generated.encode()]


def _key(compiler: str, family: str, generated: str) -> str:
    version = subprocess.run([compiler, "--version"], capture_output=True, text=True, timeout=30).stdout
    digest = hashlib.sha256()
    for part in (*_sources(family, generated), " ".join(flags()).encode(), version.encode(), _cpu_signature().encode()):
        digest.update(part)
    return digest.hexdigest()[:20]


def _private(path: Path) -> str | None:
    """Why ``path`` (an existing folder or file) must not be trusted, or None: it must be ours and
    not writable by group or others."""
    st = path.stat()
    if hasattr(os, "getuid") and st.st_uid != os.getuid():
        return f"{path} belongs to another user"
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        return f"{path} is writable by other users"
    return None


def _usable_cache(folder: Path) -> tuple[Path | None, str | None]:
    """The cache folder if it is a private, writable directory (created 0700 if missing)."""
    try:
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        if not folder.is_dir():
            return None, f"cache path {folder} is not a folder"
        reason = _private(folder)
        if reason:
            return None, reason
        if not os.access(folder, os.W_OK | os.X_OK):
            return None, f"cache folder {folder} is not writable"
        return folder, None
    except OSError as error:
        return None, f"cache folder {folder} is unusable ({error.strerror or error})"


def _configure(lib: ctypes.CDLL) -> ctypes.CDLL:
    i64, ptr, i32 = ctypes.c_int64, ctypes.c_void_p, ctypes.c_int
    lib.oa_abi_version.restype = i32
    f64 = ctypes.c_double
    lib.oa_forward.argtypes = [i32, i32, ptr, ptr, i64, i64, i64, ptr, i32, i32, i32, i32, f64, f64]
    lib.oa_forward.restype = i32
    lib.oa_backward.argtypes = [i32, i32, ptr, ptr, ptr, ptr, i64, i64, i64, ptr, i32, i32, i32, i32, f64, f64,
                                ctypes.c_uint, ptr]
    lib.oa_backward.restype = i32
    return lib


def _open(path: Path) -> ctypes.CDLL:
    reason = _private(path)
    if reason:
        raise OSError(reason)
    lib = _configure(ctypes.CDLL(str(path)))
    version = lib.oa_abi_version()
    if version != ABI_VERSION:
        raise OSError(f"library ABI version {version}, expected {ABI_VERSION}")
    lib.oa_vector_bytes.restype = ctypes.c_int  # (version 5 and later)
    return lib


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def _cached(pointer: Path) -> Path | None:
    """The library a pointer file names, if its bytes still hash to its name (complete, unaltered)."""
    try:
        name = pointer.read_text().strip()
        library = pointer.with_name(name)
        if name.startswith(pointer.stem + "-") and name.endswith(".so") and _digest(library) == name[-19:-3]:
            return library
    except OSError:
        pass
    return None


def _compile(compiler: str, folder: Path, pointer: Path, generated: str,
             source: Path | None = None) -> tuple[Path | None, str | None]:
    """Compile (the sources in ``source``, default :data:`KERNEL_DIR`) into ``folder`` under a name
    holding the library's hash, then point ``pointer`` at it (both renames are atomic: a concurrent
    process sees the old library or the new one, never half)."""
    source = source or KERNEL_DIR
    with tempfile.TemporaryDirectory(dir=folder, prefix=".build-") as build:
        (Path(build) / "families.inc").write_text(generated)
        tmp = Path(build) / "kernels.so"
        cmd = [compiler, *flags(), f"-I{build}", f"-I{source}", "-o", str(tmp), str(source / DRIVER)]
        # its own session, so a timeout stops the compiler proper (cc1plus) too, not only the driver
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
        try:
            stdout, stderr = proc.communicate(timeout=_timeout())
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            return None, f"compiling the fused kernels took longer than {_timeout():.0f} s (set {BUILD_TIMEOUT_ENV} to wait longer)"
        if proc.returncode != 0:
            lines = (stderr or stdout).strip().splitlines()
            message = [line.strip() for line in lines if "error" in line][:3] or lines[-5:]
            return None, "compiling the fused kernels failed: " + " | ".join(message)
        os.chmod(tmp, 0o700)
        library = folder / f"{pointer.stem}-{_digest(tmp)}.so"
        os.replace(tmp, library)
        link = Path(build) / "pointer"
        link.write_text(library.name)
        os.replace(link, pointer)
    return library, None


def _build(family: str) -> BuildInfo:
    start = time.perf_counter()
    try:
        compiler = _compiler()
        if compiler is None:
            return BuildInfo(None, None, False, 0.0, "no C++ compiler found (install g++ or set CXX)", family=family)
        generated = families_inc(family)
        key = _key(compiler, family, generated)
        folder, note = _usable_cache(cache_dir())
        private_tmp = None
        if folder is None:  # build for this process only, in a folder nobody else can write
            private_tmp = tempfile.TemporaryDirectory(prefix="orthoact-kernels-")
            folder = Path(private_tmp.name)
        pointer = folder / f"kernels-{family}-{key}.txt"
        cached = _cached(pointer)
        if cached is not None:
            try:
                return BuildInfo(_open(cached), cached, False, time.perf_counter() - start, None, note, family)
            except OSError:  # stale or foreign: rebuild it once
                pass
        target, error = _compile(compiler, folder, pointer, generated)
        if error:
            return BuildInfo(None, None, False, time.perf_counter() - start, error, note, family)
        lib = _open(target)
        if private_tmp is not None:
            # The loaded library stays mapped after its file is removed with the folder.
            _keep.append(private_tmp)
        return BuildInfo(lib, target, True, time.perf_counter() - start, None, note, family)
    except Exception as error:  # noqa: BLE001 - any failure means "no fused kernels for this family", never a crash
        return BuildInfo(None, None, False, time.perf_counter() - start,
                         f"building the fused kernels failed ({type(error).__name__}: {error})", family=family)


_keep: list = []  # private build folders of this process (removed at exit)


def _loaded(family: str) -> BuildInfo:
    info = _infos.get(family)
    if info is None:
        info = _infos.setdefault(family, _build(family))
        if info.note and info.library is not None:
            warnings.warn(f"orthoact: {info.note}; the fused kernels of {family} were built in a private temporary "
                          "folder for this process only", RuntimeWarning, stacklevel=3)
    return info


def build_from(family: str, source: Path, folder: Path) -> BuildInfo:
    """One family's library built from another copy of the kernel sources (``source``: a folder laid
    out as :data:`KERNEL_DIR`, e.g. an older commit's) into ``folder``, bypassing the cache and not
    put in use (:func:`swap` does that): for comparing two kernel versions in one process
    (``benchmarks/kernel_ab.py``). The family's declaration (its variants, headers and degrees) is
    this checkout's, so both versions must agree with it and with :data:`ABI_VERSION`."""
    start = time.perf_counter()
    compiler = _compiler()
    if compiler is None:
        return BuildInfo(None, None, False, 0.0, "no C++ compiler found (install g++ or set CXX)", family=family)
    if not (Path(source) / DRIVER).is_file():
        return BuildInfo(None, None, False, 0.0, f"{Path(source) / DRIVER} is missing", family=family)
    folder, error = _usable_cache(Path(folder))
    if folder is None:
        return BuildInfo(None, None, False, 0.0, error, family=family)
    generated = families_inc(family, Path(source))
    target, error = _compile(compiler, folder, folder / f"kernels-{family}-from-source.txt", generated, Path(source))
    if error is None:
        try:
            return BuildInfo(_open(target), target, True, time.perf_counter() - start, None, family=family)
        except OSError as failure:
            error = str(failure)
    return BuildInfo(None, target, True, time.perf_counter() - start, error, family=family)


def swap(family: str, info: BuildInfo | None) -> BuildInfo | None:
    """Put ``info`` (from :func:`build_from`) in use for ``family`` in this process; returns the one
    that was in use, to swap back (``None``: none was loaded yet; swapping ``None`` back in unloads,
    so the next call builds or loads the family's own library as usual)."""
    with _lock:
        previous = _infos.get(family)
        if info is None:
            _infos.pop(family, None)
        else:
            _infos[family] = info
    return previous


def library(family: str) -> BuildInfo:
    """Build (once per machine) and load one family's kernels; never raises, reports failure in
    ``error``."""
    if family not in _infos:
        with _lock:
            if family not in cpp_families():
                return BuildInfo(None, None, False, 0.0, f"{family} declares no C++ kernels", family=family)
            _loaded(family)
    return _infos[family]


def load(families: list[str] | tuple[str, ...] | None = None) -> Kernels:
    """Build (once per machine, side by side) and load every family's kernels, or only those named
    in ``families`` (names without C++ kernels are left out); never raises."""
    start = time.perf_counter()
    with _lock:
        names = [n for n in cpp_families() if families is None or n in families]
        missing = [n for n in names if n not in _infos]
        if missing:
            with ThreadPoolExecutor(max_workers=max(1, min(len(missing), os.cpu_count() or 1))) as pool:
                built = dict(zip(missing, pool.map(_build, missing)))
            for name in missing:  # in declaration order
                _infos[name] = built[name]
                _loaded(name)
    return Kernels({n: _infos[n] for n in names}, time.perf_counter() - start)
