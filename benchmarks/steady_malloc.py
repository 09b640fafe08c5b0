"""Steady allocation for the CPU timings: glibc's malloc adjusts its mmap threshold at run time (a freed
mmapped block raises it), so a tensor of a few MB alternates between fresh mmapped pages (a page fault
per 4 KB on first touch) and recycled heap memory from one call to the next: the same activation call
then takes, e.g., 4.7 or 13.7 ms in alternate calls (Rational-5/4's recompute, 4M float32; GELU's 7.0
or 13.4 ms), which was "GELU's bimodal time" of the earlier measurements, and an interleaved pair of
providers can fall into opposite phases. Fixing the threshold (32 MiB, glibc's largest: every tensor of
the default 4M elements from the heap) and never trimming the heap gives each call the same memory:
4.6 and 7.0 ms every time.

    steady_malloc.add_option(parser)          # a benchmark's --dynamic-malloc
    steady_malloc.configure(args)             # first thing after parsing (before allocating): prints what it did
"""

from __future__ import annotations

import ctypes
import ctypes.util

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 * 1024 * 1024  # glibc's DEFAULT_MMAP_THRESHOLD_MAX on 64-bit
TRIM_THRESHOLD = 2**31 - 1


def apply() -> str:
    """Fix glibc's mmap threshold and turn off heap trimming in this process; what was done, for the report."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return "malloc: dynamic (not glibc: mallopt unavailable)"
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    if mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) != 1 or mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD) != 1:
        return "malloc: dynamic (mallopt refused)"
    return f"malloc: steady (mmap threshold {MMAP_THRESHOLD >> 20} MiB, no trimming; --dynamic-malloc for glibc's default)"


def add_option(parser) -> None:
    """A benchmark's ``--dynamic-malloc`` option (keep glibc's default)."""
    parser.add_argument("--dynamic-malloc", action="store_true",
                        help="keep glibc's dynamic mmap threshold (see benchmarks/steady_malloc.py)")


def configure(args) -> None:
    """Steady allocation unless ``args.dynamic_malloc``; prints which."""
    print("malloc: dynamic (glibc's default)" if args.dynamic_malloc else apply(), flush=True)
