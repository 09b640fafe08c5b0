"""Training-step time of the shakespeare-char GPT (4 layers, 128 wide, block 128, batch 32) per
activation, as a ratio to GELU measured in the same run (interleaved steps, median).

    python benchmarks/lm_step_time.py [--steps 30] [--preset shakespeare-char]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

import orthoact
from orthoact.models import GPT
from orthoact.train.lm import resolve_config
from orthoact.train.trainer import parameter_groups

CONFIGS = [("gelu", None), ("hermite:3", "fused"), ("hermite:3", "reference"), ("tropical:5", "fused"),
           ("fourier:5", "fused"), ("tropical_rational:5", "fused"), ("rational:5/4", "fused")]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--preset", default="shakespeare-char")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default="bench_results/lm_step_time.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cfg = resolve_config(args.preset, ["model.vocab_size=84"])
    m, t = cfg["model"], cfg["train"]
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, m.vocab_size, (t.batch_size, m.block_size), generator=g)
    y = torch.randint(0, m.vocab_size, (t.batch_size, m.block_size), generator=g)
    runs = {}
    for act, backend in CONFIGS:
        import dataclasses

        factory = (lambda a=act, b=backend: orthoact.create(a, backend=b)) if backend else act
        torch.manual_seed(0)
        model = GPT(dataclasses.replace(m, activation=factory))
        opt = torch.optim.AdamW(parameter_groups(model, t.weight_decay, 1.0), lr=t.lr)
        runs[f"{act}" + (f"/{backend}" if backend else "")] = (model, opt)

    def step(model, opt):
        start = time.perf_counter()
        _, loss = model(x, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return time.perf_counter() - start

    for model, opt in runs.values():  # warm-up
        for _ in range(2):
            step(model, opt)
    samples = {name: [] for name in runs}
    for _ in range(args.steps):
        for name, (model, opt) in runs.items():
            samples[name].append(step(model, opt))
    medians = {name: statistics.median(v) for name, v in samples.items()}
    base = medians["gelu"]
    print(f"{args.preset}: batch {t.batch_size} x block {m.block_size}, {m.n_layer} layers x {m.n_embd}, "
          f"{args.threads} threads, median of {args.steps} interleaved steps")
    print(f"{'activation':<28}{'s/step':>9}{'/ GELU':>9}")
    for name, value in medians.items():
        print(f"{name:<28}{value:>9.3f}{value / base:>9.2f}")
    ratio = medians["hermite:3/fused"] / base
    print(f"\ntarget: Hermite-3 (fused) step time <= 1.05x GELU: {ratio:.2f} ({'met' if ratio <= 1.05 else 'NOT met'})")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"seconds_per_step": medians, "ratio_to_gelu": {k: v / base for k, v in medians.items()}}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
