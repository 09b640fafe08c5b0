"""Kernel-only A/B of the fused CPU kernels: two versions of ``src/orthoact/ops/kernels`` (a git
ref and the working tree, or two refs) built side by side and alternated round by round in one
process (the same module; the family's library swapped between the calls), reporting the median of
the per-round time ratios B/A for forward, backward and forward+backward with their 25-75% spread.

On a shared machine whose speed changes by 2x within minutes this is the measurement that decides a
kernel change: ``cpu_activations.py``'s ratios to GELU move more with the machine's state than with
the kernels. Both versions are built with this checkout's family declarations (variants, headers,
degrees), so they must agree on those and on the library ABI version.

    python benchmarks/kernel_ab.py fourier '{"degree": 5}' --base HEAD~1        # HEAD~1 (A) against the working tree (B)
    python benchmarks/kernel_ab.py fourier '{"degree": 5, "learn_frequencies": false}' --base main --head HEAD
    python benchmarks/kernel_ab.py tropical_rational '{"degree": 5}' --base HEAD~2 --threads 1 --rounds 21
    python benchmarks/kernel_ab.py fourier '{"degree": 5, "learn_frequencies": false}' --kernel-only --threads 1
    python benchmarks/kernel_ab.py tropical_rational '{"degree": 5}' --kernel-only --parameters \
        '{"slopes_num": [-2.5, -1.5, -0.5, 0.5, 1.5, 2.5], "offsets_num": [-1.5625, -0.5625, -0.0625, -0.0625, -0.5625, -1.5625],
          "slopes_den": [-2.5, -1.5, -0.5, 0.5, 1.5, 2.5], "offsets_den": [-1.5625, -0.5625, -0.0625, -0.0625, -0.5625, -1.5625]}'

``--kernel-only`` calls the libraries' ``oa_forward`` / ``oa_backward`` on preallocated buffers (the
module's parameters packed as the fast path packs them; one group, no input map) instead of the module: no
allocation, page faults or Python in the timed region, which makes a small difference visible
sooner (those costs are the same for both versions and only add noise). It also loads a ref of an
earlier library ABI (version 5, before the backward's ``skip`` mask, e.g. ``--base 7919f86``; version 6,
before its value buffer, e.g. ``--base b201ebc``).
"""

from __future__ import annotations

import argparse
import ctypes
import dataclasses
import json
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from io import BytesIO
from pathlib import Path

import steady_malloc
import torch

from orthoact.ops import _build
from orthoact.ops._common import kernel_code, kernel_entry

sys.path.insert(0, str(Path(__file__).parent))
from cpu_activations import _quartiles, make, run_once  # noqa: E402  (its modules, timing and spread)

WORKTREE = "worktree"
KERNELS = "src/orthoact/ops/kernels"


def sources(ref: str, scratch: Path) -> Path:
    """The kernel sources of ``ref`` (a git ref, or ``worktree``: this checkout's files as they are)."""
    if ref == WORKTREE:
        return _build.KERNEL_DIR
    repo = Path(__file__).resolve().parent.parent
    archive = subprocess.run(["git", "-C", str(repo), "archive", "--format=tar", ref, KERNELS], capture_output=True)
    if archive.returncode != 0:
        raise SystemExit(f"git archive {ref} {KERNELS} failed: {archive.stderr.decode().strip()}")
    out = scratch / ref.replace("/", "_").replace("~", "-").replace("^", "-")
    with tarfile.open(fileobj=BytesIO(archive.stdout)) as tar:
        tar.extractall(out, filter="data")
    return out / KERNELS


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("family")
    parser.add_argument("kwargs", nargs="?", default="{}", help="the module's options as JSON, e.g. '{\"degree\": 5}'")
    parser.add_argument("--base", default="HEAD", help="version A: a git ref or 'worktree' (default HEAD)")
    parser.add_argument("--head", default=WORKTREE, help="version B: a git ref or 'worktree' (default)")
    parser.add_argument("--numel", type=int, default=4 * 1024 * 1024)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=16, help="alternating rounds (even: each version first as often)")
    parser.add_argument("--calls", type=int, default=3, help="calls per version and round; the fastest counts")
    parser.add_argument("--kernel-only", action="store_true", help="time the kernels on preallocated buffers")
    parser.add_argument("--parameters", default=None,
                        help="the module's parameter values as JSON, name to nested list (default: its init), e.g. "
                             "TropicalRational's lines all on their envelopes")
    steady_malloc.add_option(parser)
    args = parser.parse_args()
    steady_malloc.configure(args)
    if args.family not in _build.cpp_families():
        raise SystemExit(f"family {args.family!r}: expected one with C++ kernels, {', '.join(_build.cpp_families())}")
    kwargs = json.loads(args.kwargs)
    torch.set_num_threads(args.threads)
    module = make("fused", args.family, kwargs)
    if args.parameters:
        set_parameters(module, json.loads(args.parameters))
    x0, dy = torch.randn(args.numel), torch.randn(args.numel)
    step = kernel_step(module, x0, dy) if args.kernel_only else None  # (refuses what it cannot time, before building)
    with tempfile.TemporaryDirectory(prefix="orthoact-kernel-ab-") as scratch:
        builds = {}
        for label, ref in (("A", args.base), ("B", args.head)):
            print(f"building {label} = {ref} ...", flush=True)
            info = _build.build_from(args.family, sources(ref, Path(scratch)), Path(scratch) / f"lib-{label}")
            if (info.library is None and args.kernel_only and info.path is not None
                    and any(f"ABI version {v}," in (info.error or "") for v in EARLIER_ABI)):
                info = dataclasses.replace(info, library=earlier_abi(info.path), error=None)
            if info.library is None:
                print(f"{label} ({ref}): {info.error}", file=sys.stderr)
                return 1
            builds[label] = info
        previous = _build.swap(args.family, builds["A"])
        try:
            times = {label: [] for label in builds}
            for label in builds:  # warm-up
                _build.swap(args.family, builds[label])
                step(builds[label].library) if step else run_once(module, x0, dy)
            for r in range(args.rounds):
                for label in (("A", "B") if r % 2 == 0 else ("B", "A")):
                    _build.swap(args.family, builds[label])
                    runs = [step(builds[label].library) if step else run_once(module, x0, dy) for _ in range(args.calls)]
                    times[label].append(min(runs, key=sum))
        finally:
            _build.swap(args.family, previous)
    print(f"{args.family} {kwargs}: {args.numel} float32 elements, {args.threads} threads, {args.rounds} alternating "
          f"rounds, fastest of {args.calls} calls each{', kernels only' if args.kernel_only else ''}; "
          f"A = {args.base}, B = {args.head}")
    print(f"{'':10}{'A ms':>9}{'B ms':>9}{'B/A':>8}  {'25-75%':>11}")
    for i, part in enumerate(("forward", "backward", "total")):
        pick = (lambda t: sum(t)) if part == "total" else (lambda t, i=i: t[i])
        a = [1e3 * pick(t) for t in times["A"]]
        b = [1e3 * pick(t) for t in times["B"]]
        ratios = [y / x for x, y in zip(a, b)]
        lo, hi = _quartiles(ratios)
        print(f"{part:10}{statistics.median(a):9.2f}{statistics.median(b):9.2f}{statistics.median(ratios):8.3f}  "
              f"{lo:5.3f}-{hi:5.3f}")
    return 0


#: Library ABI versions --kernel-only also loads: their oa_backward takes a prefix of this version's
#: arguments (5: no ``skip`` mask, every parameter's sums computed; 6: no value buffer ``y``).
EARLIER_ABI = (5, 6)


def earlier_abi(path: Path) -> ctypes.CDLL:
    """A library of an earlier ABI version (:data:`EARLIER_ABI`), for --kernel-only comparisons across
    those changes: called with this version's arguments (``y`` null), the extra last ones are ignored
    (x86-64 and AArch64 calling conventions)."""
    lib = _build._configure(ctypes.CDLL(str(path)))
    if lib.oa_abi_version() not in EARLIER_ABI:
        raise SystemExit(f"{path}: ABI version {lib.oa_abi_version()}, expected one of {EARLIER_ABI}")
    return lib


def set_parameters(module, values: dict) -> None:
    """Copy ``values`` (parameter name to nested list) into the module's parameters of those names."""
    params = dict(module.named_parameters())
    for name, value in values.items():
        if name not in params:
            raise SystemExit(f"--parameters: {name!r} is not a parameter of the module ({', '.join(params)})")
        value = torch.tensor(value, dtype=params[name].dtype)
        if value.numel() != params[name].numel():
            raise SystemExit(f"--parameters: {name!r} has {params[name].numel()} values, got {value.numel()}")
        with torch.no_grad():
            params[name].copy_(value.reshape(params[name].shape))


def kernel_step(module, x0: torch.Tensor, dy: torch.Tensor):
    """A function of a library that runs its forward and backward kernels on buffers allocated once,
    with the module's parameters packed as the fast path packs them (float32, one group), and
    returns their times; its ``outputs`` are those buffers: y, dx and the packed parameter sums (as
    the kernels leave them, before the fast path's split)."""
    if module.domain is not None or module.clamp or module.tensors()[0].shape[0] != 1:
        raise SystemExit("--kernel-only runs one group without an input map: leave out groups, domain and clamp")
    code = kernel_code(module.spec, module.options)
    tensors = [t.detach().float() for t in module.tensors()]
    packed = torch.cat(tensors, dim=1).contiguous()
    fixed = sum(1 << j for j, t in enumerate(module.tensors()) if not t.requires_grad)
    y, dx = torch.empty_like(x0), torch.empty_like(x0)
    dparams = torch.zeros(packed.shape, dtype=torch.float64)
    variant, n, degree, p = kernel_entry(code).variant, x0.numel(), module.spec.kernel_degree(module.degree), packed.shape[1]
    threads = torch.get_num_threads()

    def step(lib) -> tuple[float, float]:
        start = time.perf_counter()
        status = lib.oa_forward(variant, 0, x0.data_ptr(), y.data_ptr(), n, n, 1, packed.data_ptr(), degree, p, threads,
                                0, 0.0, 0.0)
        mid = time.perf_counter()
        status |= lib.oa_backward(variant, 0, x0.data_ptr(), dy.data_ptr(), dx.data_ptr(), dparams.data_ptr(), n, n, 1,
                                  packed.data_ptr(), degree, p, threads, 0, 0.0, 0.0, fixed, None)
        end = time.perf_counter()
        if status:
            raise SystemExit(f"the kernels failed (status {status})")
        return mid - start, end - mid

    step.outputs = (y, dx, dparams)
    return step


if __name__ == "__main__":
    sys.exit(main())
