"""CPU benchmark: forward, backward and forward+backward time, and peak extra memory, per activation.

Every family at the paper's degrees (Hermite 3 and 8, Fourier 5, Tropical 5, TropicalRational 5) and
Rational 5/4 (versions A and B) on the fused path and the reference path, next to ``nn.GELU``,
torchortho 0.1.2 and PAU's rational-activations 0.2.0 (when installed), on 4M float32 elements
with 2 threads. Times are medians over interleaved repeats and are reported
as ratios to GELU measured in the same run. Memory is measured per configuration in a fresh
process: peak RSS (VmHWM, reset through /proc/self/clear_refs) above the RSS before the call.

    python benchmarks/cpu_activations.py                 # full table, writes bench_results/cpu_activations.json
    python benchmarks/cpu_activations.py --quick         # fewer repeats, no torchortho
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
from torch import nn

import orthoact

CONFIGS = [
    ("hermite", {"degree": 3}),
    ("hermite", {"degree": 8}),
    ("fourier", {"degree": 5}),
    ("fourier", {"degree": 5, "learn_frequencies": False}),
    ("tropical", {"degree": 5}),
    ("tropical_rational", {"degree": 5}),
    ("rational", {"numerator": 5, "denominator": 4}),
    ("rational", {"numerator": 5, "denominator": 4, "version": "B"}),
]
# Every declared family is measured: one not listed above runs at its default degree.
CONFIGS += [(s.name, dict(zip(("numerator", "denominator"), s.default_degree)) if isinstance(s.default_degree, tuple)
             else {"degree": s.default_degree}) for s in orthoact.declarations.specs() if s.name not in {f for f, _ in CONFIGS}]
TORCHORTHO = {"hermite": "HermiteActivation", "fourier": "FourierActivation",
              "tropical": "TropicalActivation", "tropical_rational": "TropicalRationalActivation"}
TARGETS = {"hermite-3": 1.0, "tropical-5": 1.0, "tropical_rational-5": 1.2, "hermite-8": 1.5, "fourier-5": 2.0,
           "rational-5/4": 1.5, "rational-5/4-B": 1.5}


def label(family: str, kwargs: dict) -> str:
    degree = kwargs["degree"] if "degree" in kwargs else f"{kwargs['numerator']}/{kwargs['denominator']}"
    name = f"{family}-{degree}"
    name += "-fixedfreq" if kwargs.get("learn_frequencies") is False else ""
    return name + (f"-{kwargs['version']}" if "version" in kwargs else "")


def make(provider: str, family: str | None = None, kwargs: dict | None = None) -> nn.Module:
    if provider == "gelu":
        return nn.GELU()
    if provider == "torchortho":
        import torchortho

        return getattr(torchortho, TORCHORTHO[family])(kwargs["degree"])
    if provider == "pau":  # PAU's rational-activations 0.2.0, its PyTorch implementation
        from rational.torch import Rational as PauRational

        return PauRational(approx_func="gelu", degrees=(kwargs["numerator"], kwargs["denominator"]),
                           version=kwargs.get("version", "A"), cuda=False)
    return orthoact.create(family, backend=provider, **kwargs)


def providers(with_torchortho: bool) -> list[tuple[str, str, dict | None]]:
    out = [("gelu", "gelu", None)]
    for family, kwargs in CONFIGS:
        out.append((f"{label(family, kwargs)}/fused", family, kwargs))
        out.append((f"{label(family, kwargs)}/reference", family, kwargs))
        if with_torchortho and "learn_frequencies" not in kwargs and family in TORCHORTHO:
            out.append((f"{label(family, kwargs)}/torchortho", family, kwargs))
        if with_torchortho and family == "rational" and importlib.util.find_spec("rational"):
            out.append((f"{label(family, kwargs)}/pau", family, kwargs))
    return out


def run_once(module: nn.Module, x0: torch.Tensor, dy: torch.Tensor) -> tuple[float, float]:
    x = x0.detach().requires_grad_()
    start = time.perf_counter()
    y = module(x)
    mid = time.perf_counter()
    y.backward(dy)
    end = time.perf_counter()
    del y, x
    return mid - start, end - mid


def time_all(entries, numel: int, repeats: int) -> dict[str, dict[str, float]]:
    x0, dy = torch.randn(numel), torch.randn(numel)
    modules = {}
    for name, family, kwargs in entries:
        provider = name.split("/")[-1] if "/" in name else "gelu"
        modules[name] = make(provider, family, kwargs)
        run_once(modules[name], x0, dy)  # warm-up (loads kernels, first-touch allocations)
    samples = {name: {"forward": [], "backward": [], "total": []} for name in modules}
    for _ in range(repeats):  # interleaved, so machine noise hits every provider alike
        for name, module in modules.items():
            if name.endswith(("/torchortho", "/pau")) and len(samples[name]["total"]) >= 5:
                continue
            fwd, bwd = run_once(module, x0, dy)
            samples[name]["forward"].append(fwd)
            samples[name]["backward"].append(bwd)
            samples[name]["total"].append(fwd + bwd)
    return {name: {k: statistics.median(v) for k, v in s.items()} for name, s in samples.items()}


def memory_probe(name: str, family: str | None, kwargs: dict | None, numel: int) -> int:
    """Run in a fresh process: bytes of peak RSS above the RSS right before forward+backward."""
    def status(field: str) -> int:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field):
                return int(line.split()[1]) * 1024
        raise RuntimeError(field)

    provider = name.split("/")[-1] if "/" in name else "gelu"
    module = make(provider, family, kwargs)
    x0, dy = torch.randn(numel), torch.randn(numel)
    run_once(module, x0[:4096], dy[:4096])  # load libraries and kernels without big allocations
    baseline = status("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # reset the peak (VmHWM) to the current RSS
    run_once(module, x0, dy)
    return status("VmHWM") - baseline


def measure_memory(entries, numel: int) -> dict[str, int]:
    out = {}
    for name, family, kwargs in entries:
        cmd = [sys.executable, __file__, "--memory-probe", json.dumps([name, family, kwargs]), "--numel", str(numel)]
        env = dict(os.environ, OMP_NUM_THREADS="2")
        result = subprocess.run(cmd, capture_output=True, text=True, env=env)
        if result.returncode != 0:
            raise RuntimeError(f"memory probe for {name} failed:\n{result.stderr}")
        out[name] = int(result.stdout.strip().splitlines()[-1])
    return out


def compile_latency() -> dict[str, float]:
    """First-call cost of the fused kernels: compiling into an empty cache, then loading from it."""
    import tempfile

    code = "import time, orthoact; t=time.perf_counter(); i=orthoact.ops.load_fused_kernels(); print(time.perf_counter()-t, i.compiled)"
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, ORTHOACT_CACHE_DIR=cache)
        cold = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env).stdout.split()
        warm = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env).stdout.split()
    return {"compile_s": float(cold[0]), "cached_load_s": float(warm[0])}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--numel", type=int, default=4 * 1024 * 1024)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--quick", action="store_true", help="3 repeats, no torchortho, no memory probes")
    parser.add_argument("--no-torchortho", action="store_true")
    parser.add_argument("--out", default="bench_results/cpu_activations.json")
    parser.add_argument("--memory-probe", help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    if args.memory_probe:
        name, family, kwargs = json.loads(args.memory_probe)
        print(memory_probe(name, family, kwargs, args.numel))
        return 0

    try:
        import torchortho  # noqa: F401
        have_torchortho = not (args.quick or args.no_torchortho)
    except ImportError:
        have_torchortho = False
    entries = providers(have_torchortho)
    repeats = 3 if args.quick else max(args.repeats, 5)
    print(f"orthoact {orthoact.__version__}, torch {torch.__version__}, {args.numel} float32 elements, "
          f"{args.threads} threads, median of {repeats} interleaved repeats", flush=True)
    latency = compile_latency()
    print(f"fused kernels: first-call compile {latency['compile_s']:.2f} s, later processes load the cached "
          f"library in {latency['cached_load_s']:.3f} s", flush=True)
    times = time_all(entries, args.numel, repeats)
    memory = {} if args.quick else measure_memory(entries, args.numel)

    gelu = times["gelu"]
    rows = []
    header = (f"{'configuration':<36}{'fwd ms':>8}{'bwd ms':>8}{'total ms':>9}{'fwd/G':>7}{'bwd/G':>7}{'total/G':>8}"
              f"{'mem MB':>8}{'mem/G':>7}")
    print(header)
    print("-" * len(header))
    for name, t in times.items():
        row = {"name": name, **{f"{k}_ms": v * 1e3 for k, v in t.items()},
               **{f"{k}_ratio": t[k] / gelu[k] for k in t}}
        if memory:
            row["peak_extra_mb"] = memory[name] / 2**20
            row["memory_ratio"] = memory[name] / memory["gelu"]
        rows.append(row)
        mem = f"{row['peak_extra_mb']:>8.1f}{row['memory_ratio']:>7.2f}" if memory else ""
        print(f"{name:<36}{row['forward_ms']:>8.2f}{row['backward_ms']:>8.2f}{row['total_ms']:>9.2f}"
              f"{row['forward_ratio']:>7.2f}{row['backward_ratio']:>7.2f}{row['total_ratio']:>8.2f}{mem}")

    print("\ntargets (forward+backward / GELU, fused path):")
    by_name = {r["name"]: r for r in rows}
    for config, target in TARGETS.items():
        ratio = by_name[f"{config}/fused"]["total_ratio"]
        print(f"  {config:<22} {ratio:5.2f}  target <= {target:.1f}  {'met' if ratio <= target else 'NOT met'}")
    if memory:
        worst = max(r["memory_ratio"] for r in rows if r["name"].endswith("/fused"))
        print(f"  peak extra memory / GELU (worst fused) {worst:.2f}  target <= 1.1  {'met' if worst <= 1.1 else 'NOT met'}")
    if "hermite-3/torchortho" in by_name:
        speedup = by_name["hermite-3/torchortho"]["total_ms"] / by_name["hermite-3/fused"]["total_ms"]
        print(f"  hermite-3 speed-up over torchortho 0.1.2: {speedup:.0f}x  target >= 50x  {'met' if speedup >= 50 else 'NOT met'}")
    if "rational-5/4/pau" in by_name:
        speedup = by_name["rational-5/4/pau"]["total_ms"] / by_name["rational-5/4/fused"]["total_ms"]
        print(f"  rational-5/4 speed-up over rational-activations 0.2.0 (PyTorch, version A): {speedup:.1f}x")

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"numel": args.numel, "threads": args.threads, "repeats": repeats,
                               "torch": torch.__version__, "fused_kernels": latency, "rows": rows}, indent=2))
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
