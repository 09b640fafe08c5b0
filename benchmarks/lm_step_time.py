"""Training-step time of the shakespeare-char GPT (4 layers, 128 wide, block 128, batch 32) per
activation, as a ratio to GELU: every round times one step of each activation right next to a GELU
step (the pair's order alternating), and the result is the median of those per-round ratios (a
shared machine's noise moves GELU's own time by 2x between calls). Target (issue 23): every family's
fused step within 1.05x of GELU's.

    python benchmarks/lm_step_time.py [--steps 30] [--preset shakespeare-char]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import steady_malloc
import torch

import orthoact
from orthoact.models import GPT
from orthoact.train.lm import resolve_config
from orthoact.train.trainer import parameter_groups

CONFIGS = [("gelu", None), ("hermite:3", "fused"), ("hermite:3", "reference"), ("tropical:5", "fused"),
           ("fourier:5", "fused"), ("fourier:5(learn_frequencies=false)", "fused"), ("tropical_rational:5", "fused"),
           ("rational:5/4", "fused")]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--preset", default="shakespeare-char")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default="bench_results/lm_step_time.json")
    steady_malloc.add_option(parser)
    args = parser.parse_args()
    steady_malloc.configure(args)
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
    gelu = runs.pop("gelu")
    ratios = {name: [] for name in runs}
    seconds = {name: [] for name in runs}
    gelu_seconds = []
    for r in range(args.steps):
        for name, (model, opt) in runs.items():
            if r % 2:
                ours, theirs = step(model, opt), step(*gelu)
            else:
                theirs, ours = step(*gelu), step(model, opt)
            ratios[name].append(ours / theirs)
            seconds[name].append(ours)
            gelu_seconds.append(theirs)
    print(f"{args.preset}: batch {t.batch_size} x block {m.block_size}, {m.n_layer} layers x {m.n_embd}, "
          f"{args.threads} threads, median of per-round ratios over {args.steps} rounds")
    print(f"{'activation':<28}{'s/step':>9}{'/ GELU':>9}{'q25-q75':>13}  target")
    print(f"{'gelu':<28}{statistics.median(gelu_seconds):>9.3f}{1.0:>9.2f}")
    medians = {}
    for name in runs:
        ratio = statistics.median(ratios[name])
        q = statistics.quantiles(ratios[name], n=4, method="inclusive") if len(ratios[name]) > 1 else [ratio, ratio, ratio]
        medians[name] = ratio
        verdict = f"<= 1.05 {'met' if ratio <= 1.05 else 'NOT met'}" if name.endswith("/fused") else ""
        print(f"{name:<28}{statistics.median(seconds[name]):>9.3f}{ratio:>9.2f}{f'{q[0]:.2f}-{q[2]:.2f}':>13}  {verdict}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"gelu_seconds_per_step": statistics.median(gelu_seconds), "ratio_to_gelu": medians,
                               "seconds_per_step": {k: statistics.median(v) for k, v in seconds.items()}}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
