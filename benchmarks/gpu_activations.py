"""GPU benchmark of the activations: forward+backward time, achieved bandwidth and peak memory.

Each family on the Triton path, next to ``torch.nn.functional.gelu``, the eager reference and
``torch.compile`` of the reference, at 16M and 256M elements in bfloat16 and float32, with its
roofline: the bytes each pass must move (forward: read x, write y; backward: read x and dy, write dx),
the time that takes at the copy bandwidth measured in the same run (read + write of a tensor of the
same size), and the measured time as a fraction of that bound (1.0: at the memory roofline). Ratios
are to GELU in the same run. ``--model`` prints the roofline model alone (no GPU needed).

Targets (issue 20, on an H200): forward+backward of every family at >= 80% of the bound at 256M
bfloat16 elements, and <= 1.2x ``F.gelu``'s time (Hermite-3, Tropical-5) / <= 1.5x (the others).

    python benchmarks/gpu_activations.py [--quick] [--no-compile] [--out bench_results/gpu_activations.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

import orthoact
import orthoact.functional as OF
from orthoact import reference

CONFIGS = ["hermite:3", "hermite:8", "fourier:5", "tropical:5", "tropical_rational:5", "rational:5/4"]
# Every declared family is measured: one not listed above runs at its default degree.
CONFIGS += [s.name for s in orthoact.declarations.specs() if s.name not in {c.split(":")[0] for c in CONFIGS}]
TARGETS = {"hermite-3": 1.2, "tropical-5": 1.2, "hermite-8": 1.5, "fourier-5": 1.5, "tropical_rational-5": 1.5,
           "rational-5/4": 1.5}
BOUND_TARGET = 0.8  # of the copy-bandwidth bound, at 256M bfloat16 elements
H200_COPY_GBPS = 4300.0  # read + write, measured on an H200 of this kind (the static model's bandwidth)


def pass_bytes(numel: int, element_size: int) -> tuple[int, int]:
    """Bytes the forward (read x, write y) and the backward (read x and dy, write dx) must move."""
    return 2 * numel * element_size, 3 * numel * element_size


def bound_ms(numel: int, element_size: int, copy_gbps: float) -> float:
    """Forward+backward time at the copy bandwidth: the memory roofline of an elementwise activation."""
    return sum(pass_bytes(numel, element_size)) / copy_gbps / 1e6


def roofline_model(bandwidth_gbps: float = H200_COPY_GBPS) -> str:
    """The roofline as a table (static figures: no GPU measured)."""
    lines = [f"roofline at {bandwidth_gbps:.0f} GB/s copy bandwidth (static model, no GPU run)",
             f"{'elements':<10}{'dtype':<10}{'fwd MB':>9}{'bwd MB':>9}{'bound ms':>10}"]
    for numel in (16 << 20, 256 << 20):
        for name, size in (("bfloat16", 2), ("float32", 4)):
            fwd, bwd = pass_bytes(numel, size)
            lines.append(f"{numel >> 20:>4}M     {name:<10}{fwd / 1e6:>9.0f}{bwd / 1e6:>9.0f}"
                         f"{bound_ms(numel, size, bandwidth_gbps):>10.3f}")
    return "\n".join(lines)


def module_and_params(spec: str):
    """A module of ``spec`` on the GPU and copies of its parameter tensors, in declaration order."""
    module = orthoact.create(spec).cuda()
    return module, [t.detach().clone().requires_grad_() for t in module.tensors()]


def measure(fn, x, dy, reps):
    """Median fwd+bwd milliseconds and peak bytes above the inputs."""
    times = []
    peak = 0
    for i in range(reps + 2):
        xx = x.detach().requires_grad_()
        torch.cuda.synchronize()
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        y = fn(xx)
        y.backward(dy)
        end.record()
        torch.cuda.synchronize()
        peak = max(peak, torch.cuda.max_memory_allocated() - base)
        del y, xx
        if i >= 2:
            times.append(start.elapsed_time(end))
    return statistics.median(times), peak


def copy_bandwidth(x, reps=10) -> float:
    """GB/s of ``y.copy_(x)`` (read + write of x's bytes)."""
    y = torch.empty_like(x)
    times = []
    for i in range(reps + 2):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        y.copy_(x)
        end.record()
        torch.cuda.synchronize()
        if i >= 2:
            times.append(start.elapsed_time(end))
    return 2 * x.numel() * x.element_size() / statistics.median(times) / 1e6


def run(sizes, dtypes, reps: int, compile_ref: bool, deadline: float | None = None, log=print) -> dict:
    """Every (size, dtype, config, provider) measured; stops early (noting it) past ``deadline``."""
    rows, copies, skipped = [], [], []
    for numel in sizes:
        for dtype in dtypes:
            if deadline and time.monotonic() > deadline:
                skipped.append(f"{numel >> 20}M {str(dtype)[6:]}")
                continue
            x = torch.randn(numel, device="cuda", dtype=dtype)
            dy = torch.randn(numel, device="cuda", dtype=dtype)
            copy_gbps = copy_bandwidth(x)
            copies.append({"numel": numel, "dtype": str(dtype), "copy_gbps": copy_gbps})
            gelu_ms, gelu_mem = measure(F.gelu, x, dy, reps)
            fwd_bytes, bwd_bytes = pass_bytes(numel, x.element_size())
            bytes_moved = fwd_bytes + bwd_bytes
            bound = bound_ms(numel, x.element_size(), copy_gbps)
            log(f"\n{numel >> 20}M {str(dtype)[6:]}: copy {copy_gbps:.0f} GB/s; bytes forward {fwd_bytes / 1e6:.0f} MB, "
                f"backward {bwd_bytes / 1e6:.0f} MB; bound {bound:.3f} ms; gelu {gelu_ms:.3f} ms "
                f"({bound / gelu_ms:.2f} of the bound), peak +{gelu_mem / 2**20:.0f} MiB")
            log(f"{'config':<30}{'bound ms':>9}{'ms':>9}{'of bound':>9}{'GB/s':>8}{'/GELU':>8}{'peak MiB':>10}{'mem/GELU':>10}")
            for config in CONFIGS:
                module, params = module_and_params(config)
                label = module.label()
                fn_ref = reference.function(module.spec)
                providers = {
                    "triton": lambda t, m=module, p=params: OF.apply(m.family, t, *p, backend="triton", **m.options),
                    "reference": lambda t, r=fn_ref, p=params, m=module: r(t, *p, **m.options),
                }
                if compile_ref:
                    compiled = torch.compile(fn_ref, dynamic=False)
                    providers["compiled-ref"] = lambda t, c=compiled, p=params, m=module: c(t, *p, **m.options)
                for name, fn in providers.items():
                    if deadline and time.monotonic() > deadline and name != "triton":
                        continue
                    try:
                        ms, mem = measure(fn, x, dy, reps if name == "triton" else max(3, reps // 3))
                    except torch.cuda.OutOfMemoryError:
                        log(f"{label}/{name:<14} out of memory")
                        torch.cuda.empty_cache()
                        continue
                    gbps = bytes_moved / ms / 1e6
                    row = {"numel": numel, "dtype": str(dtype), "config": label, "provider": name, "ms": ms, "gbps": gbps,
                           "bound_ms": bound, "bound_fraction": bound / ms, "forward_bytes": fwd_bytes,
                           "backward_bytes": bwd_bytes, "ratio": ms / gelu_ms, "peak_mib": mem / 2**20,
                           "mem_ratio": mem / gelu_mem, "gelu_ms": gelu_ms}
                    rows.append(row)
                    log(f"{label + '/' + name:<30}{bound:>9.3f}{ms:>9.3f}{row['bound_fraction']:>9.2f}{gbps:>8.0f}"
                        f"{row['ratio']:>8.2f}{row['peak_mib']:>10.0f}{row['mem_ratio']:>10.2f}")
                    torch.cuda.empty_cache()
            del x, dy
            torch.cuda.empty_cache()
    verdicts = []
    for config, target in TARGETS.items():
        for r in rows:
            if r["config"] == config and r["provider"] == "triton":
                at_bound = r["bound_fraction"] >= BOUND_TARGET or not (r["numel"] == 256 << 20 and "bfloat16" in r["dtype"])
                ok = r["ratio"] <= target and r["mem_ratio"] <= 1.1 and at_bound
                verdicts.append({**r, "target": target, "met": ok})
    return {"rows": rows, "copy": copies, "targets": verdicts, "skipped": skipped}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="16M elements only, 5 repeats")
    parser.add_argument("--no-compile", action="store_true")
    parser.add_argument("--reps", type=int, default=10)
    parser.add_argument("--out", default="bench_results/gpu_activations.json")
    parser.add_argument("--model", action="store_true", help="print the roofline model (no GPU needed) and exit")
    args = parser.parse_args()
    if args.model:
        print(roofline_model())
        return 0
    if not torch.cuda.is_available():
        print("needs a CUDA GPU")
        return 1
    print(torch.cuda.get_device_name(), "torch", torch.__version__)
    sizes = [16 << 20] if args.quick else [16 << 20, 256 << 20]
    result = run(sizes, [torch.bfloat16, torch.float32], 5 if args.quick else args.reps, not args.no_compile)
    print(f"\ntargets (triton, fwd+bwd / GELU; memory <= 1.1x GELU's; >= {BOUND_TARGET} of the bound at 256M bfloat16):")
    for v in result["targets"]:
        print(f"  {v['config']:<20} {v['numel'] >> 20}M {v['dtype'][6:]:<9} time {v['ratio']:.2f} (<= {v['target']}) "
              f"of bound {v['bound_fraction']:.2f} memory {v['mem_ratio']:.2f}: {'met' if v['met'] else 'NOT met'}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
