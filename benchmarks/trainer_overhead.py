"""Training-step time inside the trainer vs the same model's bare step, in one process.

For each recipe (``shakespeare-char`` GPT and ``fmnist-convnext`` ConvNeXt), measures the median step
time of: a bare loop (forward, backward, AdamW as PyTorch defaults it), the trainer (its data, loss,
clipping, schedule, logging, progress; fused AdamW), and a bare loop with the trainer's fused AdamW.
Bare loops run before and after the trainer, so drift of the machine hits both. Target: trainer <=
1.05x the bare step.

    python benchmarks/trainer_overhead.py [--steps 40] [--recipes lm image]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F


def bare_steps(model, batch_fn, loss_fn, steps: int, fused: bool, cfg) -> list[float]:
    from orthoact.train.trainer import parameter_groups

    opt = torch.optim.AdamW(parameter_groups(model, cfg.weight_decay, 1.0), lr=cfg.lr, betas=(cfg.beta1, cfg.beta2),
                            fused=fused or None)
    times = []
    for i in range(steps):
        batch = batch_fn(i)
        start = time.perf_counter()
        loss = loss_fn(model, batch)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        times.append(time.perf_counter() - start)
    return times[3:]


def trainer_steps(train, preset: str, overrides: list[str], steps: int) -> list[float]:
    with tempfile.TemporaryDirectory() as out:
        train(preset, [f"train.out_dir={out}", f"train.max_steps={steps}", "train.eval_interval=100000",
                       "train.checkpoint=false", *overrides])
        rows = [json.loads(line) for line in (Path(out) / "metrics.jsonl").read_text().splitlines()]
    seconds = [r["train_seconds"] for r in rows if "train_seconds" in r]
    return [b - a for a, b in zip(seconds, seconds[1:])][3:]


def lm(steps: int):
    from orthoact.models import GPT
    from orthoact.train.lm import resolve_config, train_lm

    cfg = resolve_config("shakespeare-char", ["model.vocab_size=84"])
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 84, (cfg["train"].batch_size, cfg["model"].block_size), generator=g)
    y = torch.randint(0, 84, x.shape, generator=g)

    def model():
        torch.manual_seed(0)
        return GPT(cfg["model"])

    return ("shakespeare-char GPT (batch 32 x 128)", model, lambda i: (x, y), lambda m, b: m(*b)[1], cfg["train"],
            lambda n: trainer_steps(train_lm, "shakespeare-char", ["train.log_interval=1"], n))


def image(steps: int):
    from orthoact.models.convnext import ConvNeXt
    from orthoact.train.image import resolve_config, train_image

    cfg = resolve_config("fmnist-convnext", [])
    x = torch.randn(cfg["train"].batch_size, 1, 28, 28)
    y = torch.randint(0, 10, (cfg["train"].batch_size,))

    def model():
        torch.manual_seed(0)
        return ConvNeXt(cfg["model"])

    return ("fmnist-convnext ConvNeXt (batch 128)", model, lambda i: (x, y), lambda m, b: F.cross_entropy(m(b[0]), b[1]),
            cfg["train"], lambda n: trainer_steps(train_image, "fmnist-convnext",
                                                   ["train.log_interval=1", "data.epochs=0", "data.eval_every_epochs=0"], n))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--recipes", nargs="+", default=["lm", "image"], choices=["lm", "image"])
    parser.add_argument("--out", default="bench_results/trainer_overhead.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    results = {}
    for recipe in args.recipes:
        name, make, batch, loss, cfg, trainer = {"lm": lm, "image": image}[recipe](args.steps)
        bare_default = bare_steps(make(), batch, loss, args.steps // 2, False, cfg)
        bare_fused = bare_steps(make(), batch, loss, args.steps // 2, True, cfg)
        inside = trainer(args.steps)
        bare_default += bare_steps(make(), batch, loss, args.steps // 2, False, cfg)
        bare_fused += bare_steps(make(), batch, loss, args.steps // 2, True, cfg)
        medians = {"trainer": statistics.median(inside), "bare (default AdamW)": statistics.median(bare_default),
                   "bare (fused AdamW)": statistics.median(bare_fused)}
        results[recipe] = medians
        print(f"\n{name}, {args.threads} threads, median of {len(inside)} trainer steps and {len(bare_default)} bare steps")
        for key, value in medians.items():
            print(f"  {key:<22}{value:>8.4f} s   {value / medians['bare (default AdamW)']:.3f}x bare (default AdamW)")
        ratio = medians["trainer"] / min(medians["bare (default AdamW)"], medians["bare (fused AdamW)"])
        print(f"  target: trainer <= 1.05x the faster bare step: {ratio:.3f} ({'met' if ratio <= 1.05 else 'NOT met'})")
        results[recipe]["ratio"] = ratio
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
