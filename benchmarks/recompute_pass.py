"""The fused backward that writes the forward's value too (orthoact.nn's recompute MLP) against the
forward and the backward called apart, per family: kernels only, on buffers the fused path allocates
as usual, 4M float32 elements, 2 threads, one group, every parameter learned (fixed frequencies for
the fixed-frequency row). Each round times both right next to each other (the order alternating) and
the backward alone; the result is the median of the per-round ratios.

    python benchmarks/recompute_pass.py [--rounds 15] [--numel 4194304] [--threads 2]

Learned Fourier frequencies are moved off the paper's harmonic init (w_k = k), as the first training
step moves them: that row then writes the value from the backward's own cosines.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import steady_malloc
import torch

import orthoact
from orthoact.ops import fused
from orthoact.ops._common import kernel_code

CONFIGS = [("hermite", {"degree": 3}), ("hermite", {"degree": 8}), ("fourier", {"degree": 5}),
           ("fourier", {"degree": 5, "learn_frequencies": False}), ("tropical", {"degree": 5}),
           ("tropical_rational", {"degree": 5}), ("rational", {"numerator": 5, "denominator": 4, "version": "A"}),
           ("rational", {"numerator": 5, "denominator": 4, "version": "B"})]


def calls(module, x: torch.Tensor, dy: torch.Tensor):
    """The two ways, and the backward alone, each returning its seconds."""
    tensors = module.tensors()
    packed = torch.cat([t.detach() for t in tensors], dim=1).contiguous()
    code, degree, n = kernel_code(module.spec, module.options), module.spec.kernel_degree(module.degree), x.numel()
    fixed = sum(1 << j for j, t in enumerate(tensors) if not t.requires_grad)
    inputs = module.inputs

    def apart() -> float:
        start = time.perf_counter()
        fused._forward(x, packed, code, degree, n, 1, inputs)
        fused._backward(dy, x, packed, code, degree, n, 1, inputs, True, True, fixed)
        return time.perf_counter() - start

    def together() -> float:
        start = time.perf_counter()
        fused._backward(dy, x, packed, code, degree, n, 1, inputs, True, True, fixed, True)
        return time.perf_counter() - start

    def backward() -> float:
        start = time.perf_counter()
        fused._backward(dy, x, packed, code, degree, n, 1, inputs, True, True, fixed)
        return time.perf_counter() - start

    return apart, together, backward


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--numel", type=int, default=4 * 1024 * 1024)
    parser.add_argument("--threads", type=int, default=2)
    steady_malloc.add_option(parser)
    args = parser.parse_args()
    steady_malloc.configure(args)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    x, dy = torch.randn(args.numel), torch.randn(args.numel)
    print(f"{args.numel} float32 elements, {args.threads} threads, median of per-round ratios over {args.rounds} rounds")
    print(f"{'configuration':<44}{'apart ms':>9}{'value ms':>9}{'bwd ms':>8}{'value/apart':>12}{'value/bwd':>10}")
    for family, kwargs in CONFIGS:
        module = orthoact.create(family, backend="fused", **kwargs)
        if family == "fourier" and kwargs.get("learn_frequencies", True):
            with torch.no_grad():
                module.frequencies.add_(0.01 * torch.randn_like(module.frequencies))
        apart, together, backward = calls(module, x, dy)
        for f in (apart, together, backward):
            f()  # warm-up
        samples = {"apart": [], "together": [], "backward": []}
        for r in range(args.rounds):
            order = (apart, together, backward) if r % 2 == 0 else (backward, together, apart)
            for f in order:
                samples[f.__name__].append(min(f() for _ in range(3)))
        ratio = statistics.median(t / a for t, a in zip(samples["together"], samples["apart"]))
        over_bwd = statistics.median(t / b for t, b in zip(samples["together"], samples["backward"]))
        ms = {k: 1e3 * statistics.median(v) for k, v in samples.items()}
        name = f"{family} {kwargs}"
        print(f"{name:<44}{ms['apart']:>9.2f}{ms['together']:>9.2f}{ms['backward']:>8.2f}{ratio:>12.3f}{over_bwd:>10.3f}",
              flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
