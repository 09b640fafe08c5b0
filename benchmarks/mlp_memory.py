"""Memory and time of the recompute MLP block (orthoact.nn.MLP) against nn.Sequential(Linear, GELU, Linear).

1. Saved-for-backward bytes of one block (d = 768, hidden 3072, 8 x 256 tokens, float32), counted
   with autograd's saved-tensor hooks (distinct storages, parameters excluded). Target <= 0.6x.
2. Forward+backward time of the block (median of interleaved repeats). Target <= 1.05x.
3. Peak memory of a full GPT training step (forward, backward, AdamW) at the shakespeare-char shape
   and at the owt-gpt2-124m shape (batch 2 x 1024 here), each in a fresh process: the peak RSS
   (CPU) or the CUDA allocator's peak (GPU) above the memory before the step; recompute vs the
   unfused model with the same activation and vs GELU.

    python benchmarks/mlp_memory.py [--device cpu|cuda] [--reps 10] [--skip-gpt]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
from torch import nn

from orthoact.nn import MLP

ACTS = ["gelu", "hermite:3", "tropical:5", "fourier:5", "tropical_rational:5", "rational:5/4"]


def saved_bytes(block: nn.Module, *inputs: torch.Tensor) -> int:
    storages = {}

    def pack(t):
        storages[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    params = {p.untyped_storage().data_ptr() for p in block.parameters()}
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        block(*inputs)
    return sum(n for ptr, n in storages.items() if ptr not in params)


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def fwd_bwd(block, x, dy, device) -> float:
    xx = x.detach().requires_grad_()
    sync(device)
    start = time.perf_counter()
    block(xx).backward(dy)
    sync(device)
    return time.perf_counter() - start


def block_results(device, reps: int, tokens=(8, 256), d=768) -> list[dict]:
    torch.manual_seed(0)
    x = torch.randn(*tokens, d, device=device)
    dy = torch.randn(*tokens, d, device=device)
    baseline = nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(), nn.Linear(4 * d, d)).to(device)
    blocks = {"Sequential(Linear, GELU, Linear)": baseline}
    for act in ACTS:
        for recompute in (True, False):
            blocks[f"MLP({act}, recompute={recompute})"] = MLP(d, 4 * d, act=act, recompute=recompute).to(device)
    base_saved = saved_bytes(baseline, x)
    for block in blocks.values():  # warm-up: kernels, allocations
        fwd_bwd(block, x, dy, device)
    times = {name: [] for name in blocks}
    for _ in range(reps):
        for name, block in blocks.items():
            block.zero_grad(set_to_none=True)
            times[name].append(fwd_bwd(block, x, dy, device))
    base_time = statistics.median(times["Sequential(Linear, GELU, Linear)"])
    rows = []
    for name, block in blocks.items():
        saved = saved_bytes(block, x)
        t = statistics.median(times[name])
        rows.append({"block": name, "saved_mib": saved / 2**20, "saved_ratio": saved / base_saved, "ms": 1e3 * t,
                     "time_ratio": t / base_time})
    return rows


def gpt_probe(shape: str, act: str, recompute: bool, device: str) -> list[int]:
    """In this (fresh) process: peak bytes of one GPT training step above the memory before it, and
    the bytes autograd saves for backward in its forward (exact, whatever the allocator does)."""
    from orthoact.models import GPT
    from orthoact.train.lm import resolve_config
    from orthoact.train.trainer import parameter_groups

    overrides = ["model.vocab_size=84"] if shape == "shakespeare-char" else ["train.batch_size=2"]
    cfg = resolve_config(shape, overrides + [f"act={act}", f"model.mlp_recompute={str(recompute).lower()}"])
    m, t = cfg["model"], cfg["train"]
    dev = torch.device(device)
    torch.manual_seed(0)
    model = GPT(m).to(dev)
    opt = torch.optim.AdamW(parameter_groups(model, t.weight_decay, 1.0), lr=t.lr, fused=True)
    x = torch.randint(0, m.vocab_size, (t.batch_size, m.block_size), device=dev)

    def step():
        _, loss = model(x, x)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    step()  # optimizer state and kernels exist from here on
    opt.zero_grad(set_to_none=True)
    saved = saved_bytes(model, x, x)
    if dev.type == "cuda":
        torch.cuda.synchronize()
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        step()
        torch.cuda.synchronize()
        return [torch.cuda.max_memory_allocated() - base, saved]

    def status(field):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field):
                return int(line.split()[1]) * 1024
        raise RuntimeError(field)

    base = status("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # reset the peak (VmHWM) to the current RSS
    step()
    return [status("VmHWM") - base, saved]


def gpt_results(device: str) -> list[dict]:
    rows = []
    for shape in ("shakespeare-char", "owt-gpt2-124m"):
        peaks = {}
        for act in ACTS:
            for recompute in (True, False):
                cmd = [sys.executable, __file__, "--probe", json.dumps([shape, act, recompute, device])]
                result = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ, OMP_NUM_THREADS="2"))
                if result.returncode != 0:
                    raise RuntimeError(f"probe {shape} {act} failed:\n{result.stderr[-2000:]}")
                peaks[act, recompute] = json.loads(result.stdout.strip().splitlines()[-1])
        gelu_peak, gelu_saved = peaks["gelu", False]
        for act in ACTS:
            (peak, saved), (peak_u, saved_u) = peaks[act, True], peaks[act, False]
            rows.append({"shape": shape, "act": act, "peak_mib_recompute": peak / 2**20, "peak_mib_unfused": peak_u / 2**20,
                         "vs_unfused": peak / peak_u, "vs_gelu": peak / gelu_peak, "saved_mib_recompute": saved / 2**20,
                         "saved_mib_unfused": saved_u / 2**20, "saved_vs_unfused": saved / saved_u,
                         "saved_vs_gelu": saved / gelu_saved})
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--reps", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--skip-gpt", action="store_true")
    parser.add_argument("--skip-blocks", action="store_true")
    parser.add_argument("--probe", help=argparse.SUPPRESS)
    parser.add_argument("--out", default="bench_results/mlp_memory.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.probe:
        print(json.dumps(gpt_probe(*json.loads(args.probe))))
        return 0
    device = torch.device(args.device)
    results = {"device": str(device)}
    if not args.skip_blocks:
        rows = results["blocks"] = block_results(device, args.reps)
        print(f"one block on {device} (d 768, hidden 3072, 8 x 256 tokens, float32); median of {args.reps} interleaved fwd+bwd")
        print(f"{'block':<44}{'saved MiB':>10}{'/ GELU':>8}{'ms':>9}{'/ GELU':>8}")
        for r in rows:
            print(f"{r['block']:<44}{r['saved_mib']:>10.1f}{r['saved_ratio']:>8.2f}{r['ms']:>9.1f}{r['time_ratio']:>8.2f}")
        for r in rows:
            if "recompute=True" in r["block"]:
                ok = r["saved_ratio"] <= 0.6 and r["time_ratio"] <= 1.05
                print(f"  target {r['block']}: saved <= 0.6x ({r['saved_ratio']:.2f}), time <= 1.05x ({r['time_ratio']:.2f}): "
                      f"{'met' if ok else 'NOT met'}")
    if not args.skip_gpt:
        results["gpt"] = gpt_results(args.device)
        print("\none GPT training step (fresh process each): bytes saved for backward, and peak memory above the "
              "memory before the step (RSS on CPU: allocator noise included)")
        print(f"{'shape':<18}{'activation':<22}{'saved MiB':>10}{'/ unfused':>10}{'/ GELU':>8}{'peak MiB':>10}"
              f"{'/ unfused':>10}{'/ GELU':>8}")
        for r in results["gpt"]:
            print(f"{r['shape']:<18}{r['act']:<22}{r['saved_mib_recompute']:>10.0f}{r['saved_vs_unfused']:>10.2f}"
                  f"{r['saved_vs_gelu']:>8.2f}{r['peak_mib_recompute']:>10.0f}{r['vs_unfused']:>10.2f}{r['vs_gelu']:>8.2f}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
