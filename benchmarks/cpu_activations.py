"""CPU benchmark: forward, backward and forward+backward time, and peak extra memory, per activation.

Every family at the paper's degrees (Hermite 3 and 8, Fourier 5 with learned and fixed frequencies,
Tropical 5, TropicalRational 5) and Rational 5/4 (versions A and B) on the fused path and the
reference path, next to ``nn.GELU``, torchortho 0.1.2 and PAU's rational-activations 0.2.0 (when
installed), on 4M float32 elements with 2 threads.

Allocation is made steady first (``steady_malloc.py``: glibc's dynamic mmap threshold made every other
call of the same activation pay page faults for its fresh output, the "bimodal GELU" of the earlier
runs; ``--dynamic-malloc`` keeps glibc's default). A shared machine's noise is larger still than the
differences measured (``nn.GELU``'s own time here was 3.3 or 6.2 ms at 4M elements, switching between
calls), so providers are never timed in
blocks of their own: every round times each provider right next to a GELU call (the order of the
two alternating between rounds), and the result is the **median of the per-round ratios**, with
each provider's median milliseconds and the spread of its ratio over the rounds (25th-75th
percentile). ``--repeat K`` runs the whole measurement K times, each in a fresh process, and reports
every run's ratio beside the median over runs. Memory is measured per configuration in a fresh
process: peak RSS (VmHWM, reset through /proc/self/clear_refs) above the RSS before the call.

    python benchmarks/cpu_activations.py                 # full table, writes bench_results/cpu_activations.json
    python benchmarks/cpu_activations.py --quick         # fewer rounds, no torchortho, no memory
    python benchmarks/cpu_activations.py --repeat 3 --quick --only fused   # 3 fresh processes
    python benchmarks/cpu_activations.py --quick --only fused --mlp         # + the MLP's recompute column

``--mlp`` adds the activation's work inside ``orthoact.nn``'s recompute MLP, per training step: its
forward (no graph), then in the block's backward the value again and every gradient, which is one
``forward_and_backward`` call for an orthoact activation and, for GELU, a second forward and
``gelu_backward`` (column ``mlp/G``, fused rows only).

Targets (issue 23, forward+backward / GELU, fused): Hermite-3, Tropical-5, TropicalRational-5,
Rational-5/4 (A and B) and fixed-frequency Fourier-5 <= 1.0; Hermite-8 <= 1.0; Fourier-5 with
learned frequencies <= 1.5; peak extra memory <= 1.1x GELU's.
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

import steady_malloc
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
    ("rational", {"numerator": 5, "denominator": 4, "version": "A"}),
    ("rational", {"numerator": 5, "denominator": 4, "version": "B"}),
]
# Every declared family is measured: one not listed above runs at its default degree.
CONFIGS += [(s.name, dict(zip(("numerator", "denominator"), s.default_degree)) if isinstance(s.default_degree, tuple)
             else {"degree": s.default_degree}) for s in orthoact.declarations.specs() if s.name not in {f for f, _ in CONFIGS}]
TORCHORTHO = {"hermite": "HermiteActivation", "fourier": "FourierActivation",
              "tropical": "TropicalActivation", "tropical_rational": "TropicalRationalActivation"}
TARGETS = {"hermite-3": 1.0, "hermite-8": 1.0, "tropical-5": 1.0, "tropical_rational-5": 1.0, "fourier-5": 1.5,
           "fourier-5-fixedfreq": 1.0, "rational-5/4-A": 1.0, "rational-5/4-B": 1.0}


def label(family: str, kwargs: dict) -> str:
    degree = kwargs["degree"] if "degree" in kwargs else f"{kwargs['numerator']}/{kwargs['denominator']}"
    name = f"{family}-{degree}"
    name += "-fixedfreq" if kwargs.get("learn_frequencies") is False else ""
    name += f"-{kwargs['version']}" if "version" in kwargs else ""
    name += "-domain" if "domain" in kwargs else ""
    return name + ("-clamp" if kwargs.get("clamp") else "")


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
    module = orthoact.create(family, backend=provider, **kwargs)
    if family == "fourier" and kwargs.get("learn_frequencies", True):
        # learned frequencies leave w_k = k after the first step: measure that general form, not the
        # one-sincos recurrence the fused kernels take for harmonic frequencies (the fixed-frequency row)
        with torch.no_grad():
            module.frequencies.add_(0.01 * torch.randn_like(module.frequencies))
    return module


#: --maps: the families that take a domain, with a domain and with a domain and a clamp (issue 21:
#: within 1.2x of the same family without)
MAPS = [("hermite", {"degree": 8}), ("fourier", {"degree": 5}), ("rational", {"numerator": 5, "denominator": 4, "version": "A"})]


def providers(with_torchortho: bool, maps: bool = False) -> list[tuple[str, str, dict | None]]:
    out = [("gelu", "gelu", None)]
    configs = CONFIGS + ([(f, {**k, **m}) for f, k in MAPS for m in ({"domain": (-3.0, 3.0)},
                                                                     {"domain": (-3.0, 3.0), "clamp": True})]
                         if maps else [])
    for family, kwargs in configs:
        out.append((f"{label(family, kwargs)}/fused", family, kwargs))
        out.append((f"{label(family, kwargs)}/reference", family, kwargs))
        peers = with_torchortho and not ("domain" in kwargs or kwargs.get("clamp"))  # (peers have no input maps)
        if peers and "learn_frequencies" not in kwargs and family in TORCHORTHO:
            out.append((f"{label(family, kwargs)}/torchortho", family, kwargs))
        if peers and family == "rational" and importlib.util.find_spec("rational"):
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


def recompute_once(module: nn.Module, x0: torch.Tensor, dy: torch.Tensor) -> float:
    """The activation's work per step in orthoact.nn's recompute MLP (see the top)."""
    start = time.perf_counter()
    with torch.no_grad():
        module(x0)  # the block's forward
        if isinstance(module, nn.GELU):  # its backward: F(h) again for the weight gradient, then dL/dh
            module(x0)
            torch.ops.aten.gelu_backward(dy, x0, approximate=module.approximate)
        else:
            module.forward_and_backward(x0, dy)
    return time.perf_counter() - start


def _quartiles(values: list[float]) -> tuple[float, float]:
    if len(values) < 2:
        return values[0], values[0]
    q = statistics.quantiles(values, n=4, method="inclusive")
    return q[0], q[2]


def time_all(entries, numel: int, rounds: int, slow_rounds: int = 5, mlp: bool = False) -> dict[str, dict]:
    """Per provider: median of the per-round ratios to the GELU call next to it (forward, backward,
    total; with ``mlp``, the fused rows' recompute_once too), the 25th-75th percentile of the total
    ratio, and the medians of its own and GELU's ms."""
    x0, dy = torch.randn(numel), torch.randn(numel)
    modules = {}
    for name, family, kwargs in entries:
        provider = name.split("/")[-1] if "/" in name else "gelu"
        modules[name] = make(provider, family, kwargs)
        run_once(modules[name], x0, dy)  # warm-up (loads kernels, first-touch allocations)
        if mlp and (name.endswith("/fused") or name == "gelu"):
            recompute_once(modules[name], x0, dy)
    gelu = modules.pop("gelu")
    samples = {name: {"ratio": {"forward": [], "backward": [], "total": []}, "ms": [], "gelu_ms": []} for name in modules}
    for r in range(rounds):
        for name, module in modules.items():
            if name.endswith(("/torchortho", "/pau")) and len(samples[name]["ms"]) >= slow_rounds:
                continue
            if r % 2:  # the pair's order alternates, so a drift within the pair cancels over rounds
                ours, theirs = run_once(module, x0, dy), run_once(gelu, x0, dy)
            else:
                theirs, ours = run_once(gelu, x0, dy), run_once(module, x0, dy)
            s = samples[name]
            for k, a, b in (("forward", ours[0], theirs[0]), ("backward", ours[1], theirs[1]),
                            ("total", sum(ours), sum(theirs))):
                s["ratio"][k].append(a / b)
            s["ms"].append(1e3 * sum(ours))
            s["gelu_ms"].append(1e3 * sum(theirs))
            if mlp and name.endswith("/fused"):
                if r % 2:
                    a, b = recompute_once(module, x0, dy), recompute_once(gelu, x0, dy)
                else:
                    b, a = recompute_once(gelu, x0, dy), recompute_once(module, x0, dy)
                s["ratio"].setdefault("mlp", []).append(a / b)
    out = {}
    for name, s in samples.items():
        lo, hi = _quartiles(s["ratio"]["total"])
        out[name] = {**{f"{k}_ratio": statistics.median(v) for k, v in s["ratio"].items()},
                     "total_ratio_q25": lo, "total_ratio_q75": hi, "ms": statistics.median(s["ms"]),
                     "gelu_ms": statistics.median(s["gelu_ms"]), "rounds": len(s["ms"])}
    return out


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


def repeat_runs(args, k: int) -> int:
    """The whole measurement ``k`` times, each in a fresh process; every run's ratio and the median."""
    import tempfile

    runs = []
    for i in range(k):
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "run.json"
            cmd = [sys.executable, __file__, "--rounds", str(args.rounds), "--numel", str(args.numel), "--threads",
                   str(args.threads), "--out", str(out), "--no-memory", "--no-latency"]
            cmd += ["--quick"] if args.quick else []
            cmd += ["--no-torchortho"] if args.no_torchortho else []
            cmd += ["--maps"] if args.maps else []
            cmd += ["--mlp"] if args.mlp else []
            cmd += ["--dynamic-malloc"] if args.dynamic_malloc else []
            cmd += [a for only in args.only or [] for a in ("--only", only)]
            print(f"run {i + 1}/{k} (fresh process) ...", flush=True)
            result = subprocess.run(cmd, capture_output=True, text=True)
            if result.returncode != 0:
                print(result.stdout + result.stderr)
                return result.returncode
            runs.append(json.loads(out.read_text()))
    names = [r["name"] for r in runs[0]["rows"]]
    header = f"{'configuration':<36}" + "".join(f"{'run ' + str(i + 1):>9}" for i in range(k)) + f"{'median':>9}  target"
    print("\nforward+backward / GELU, median of per-round ratios, each run a fresh process")
    print(header)
    print("-" * len(header))
    summary = []
    for name in names:
        ratios = [next(r for r in run["rows"] if r["name"] == name)["total_ratio"] for run in runs]
        config = name.rsplit("/", 1)[0]
        target = TARGETS.get(config) if name.endswith("/fused") else None
        verdict = "" if target is None else f"<= {target:.1f} {'met' if statistics.median(ratios) <= target else 'NOT met'}"
        print(f"{name:<36}" + "".join(f"{r:>9.2f}" for r in ratios) + f"{statistics.median(ratios):>9.2f}  {verdict}")
        summary.append({"name": name, "runs": ratios, "median": statistics.median(ratios)})
    gelu_ms = [statistics.median(r["gelu_ms"] for r in run["rows"]) for run in runs]
    print("GELU ms per run (median over its calls): " + ", ".join(f"{g:.2f}" for g in gelu_ms))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"repeat": k, "summary": summary, "runs": runs}, indent=2))
    print(f"\nwrote {out}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--numel", type=int, default=4 * 1024 * 1024)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=15, help="interleaved rounds (default 15; --quick 7)")
    parser.add_argument("--repeat", type=int, default=1, help="run the measurement K times in fresh processes")
    parser.add_argument("--quick", action="store_true", help="7 rounds, no torchortho, no memory probes")
    parser.add_argument("--only", action="append", choices=["fused", "reference", "torchortho", "pau"],
                        help="only these providers besides GELU (repeatable)")
    parser.add_argument("--no-torchortho", action="store_true")
    parser.add_argument("--maps", action="store_true", help="add Hermite-8, Fourier-5, Rational-5/4 with a domain (and a clamp)")
    parser.add_argument("--mlp", action="store_true", help="add the recompute MLP's activation work per step (see above)")
    parser.add_argument("--no-memory", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--no-latency", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--out", default="bench_results/cpu_activations.json")
    parser.add_argument("--memory-probe", help=argparse.SUPPRESS)
    steady_malloc.add_option(parser)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.quick and args.rounds == 15:
        args.rounds = 7

    if args.memory_probe:
        name, family, kwargs = json.loads(args.memory_probe)
        print(memory_probe(name, family, kwargs, args.numel))
        return 0
    if args.repeat > 1:
        return repeat_runs(args, args.repeat)
    steady_malloc.configure(args)

    try:
        import torchortho  # noqa: F401
        have_torchortho = not (args.quick or args.no_torchortho)
    except ImportError:
        have_torchortho = False
    entries = providers(have_torchortho, args.maps)
    if args.only:
        entries = [e for e in entries if e[0] == "gelu" or e[0].split("/")[-1] in args.only]
    print(f"orthoact {orthoact.__version__}, torch {torch.__version__}, {args.numel} float32 elements, "
          f"{args.threads} threads, median of per-round ratios to GELU over {args.rounds} interleaved rounds", flush=True)
    lib = orthoact.ops.load_fused_kernels().families["hermite"].library
    if lib is not None:
        print(f"fused kernels: {lib.oa_vector_bytes()}-byte SIMD vectors", flush=True)
    latency = {} if args.no_latency else compile_latency()
    if latency:
        print(f"fused kernels: first-call compile {latency['compile_s']:.2f} s, later processes load the cached "
              f"library in {latency['cached_load_s']:.3f} s", flush=True)
    times = time_all(entries, args.numel, args.rounds, mlp=args.mlp)
    memory = {} if (args.quick or args.no_memory) else measure_memory(entries, args.numel)

    rows = []
    header = (f"{'configuration':<36}{'ms':>8}{'GELU ms':>9}{'total/G':>9}{'q25-q75':>13}{'fwd/G':>7}{'bwd/G':>7}"
              f"{'mem MB':>8}{'mem/G':>7}" + (f"{'mlp/G':>7}" if args.mlp else ""))
    print(header)
    print("-" * len(header))
    for name, t in times.items():
        row = {"name": name, **t}
        if memory:
            row["peak_extra_mb"] = memory[name] / 2**20
            row["memory_ratio"] = memory[name] / memory["gelu"]
        rows.append(row)
        mem = f"{row['peak_extra_mb']:>8.1f}{row['memory_ratio']:>7.2f}" if memory else ""
        spread = f"{t['total_ratio_q25']:.2f}-{t['total_ratio_q75']:.2f}"
        mem = mem or (" " * 15 if args.mlp else "")
        mlp = f"{t['mlp_ratio']:>7.2f}" if "mlp_ratio" in t else ""
        print(f"{name:<36}{t['ms']:>8.2f}{t['gelu_ms']:>9.2f}{t['total_ratio']:>9.2f}{spread:>13}"
              f"{t['forward_ratio']:>7.2f}{t['backward_ratio']:>7.2f}{mem}{mlp}")

    by_name = {r["name"]: r for r in rows}
    if any(n.endswith("/fused") for n in by_name):
        print("\ntargets (forward+backward / GELU, fused path, median of per-round ratios):")
        for config, target in TARGETS.items():
            if f"{config}/fused" in by_name:
                ratio = by_name[f"{config}/fused"]["total_ratio"]
                print(f"  {config:<22} {ratio:5.2f}  target <= {target:.1f}  {'met' if ratio <= target else 'NOT met'}")
    mapped = [n for n in by_name if n.endswith(("-domain/fused", "-clamp/fused"))]
    if mapped:
        print("\ninput maps: time / the same family without (fused; target <= 1.2):")
        for name in mapped:
            plain = name.replace("-domain", "").replace("-clamp", "")
            ratio = by_name[name]["total_ratio"] / by_name[plain]["total_ratio"]
            print(f"  {name:<36} {ratio:5.2f}  {'met' if ratio <= 1.2 else 'NOT met'}")
    if memory:
        worst = max(r["memory_ratio"] for r in rows if r["name"].endswith("/fused"))
        print(f"  peak extra memory / GELU (worst fused) {worst:.2f}  target <= 1.1  {'met' if worst <= 1.1 else 'NOT met'}")
    if "hermite-3/torchortho" in by_name and "hermite-3/fused" in by_name:
        speedup = by_name["hermite-3/torchortho"]["ms"] / by_name["hermite-3/fused"]["ms"]
        print(f"  hermite-3 speed-up over torchortho 0.1.2: {speedup:.0f}x")
    if "rational-5/4-A/pau" in by_name and "rational-5/4-A/fused" in by_name:
        speedup = by_name["rational-5/4-A/pau"]["ms"] / by_name["rational-5/4-A/fused"]["ms"]
        print(f"  rational-5/4 speed-up over rational-activations 0.2.0 (PyTorch, version A): {speedup:.1f}x")

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"numel": args.numel, "threads": args.threads, "rounds": args.rounds,
                               "torch": torch.__version__, "fused_kernels": latency, "rows": rows}, indent=2))
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
