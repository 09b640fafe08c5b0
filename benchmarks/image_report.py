"""Vision report: the fmnist-convnext preset per activation (test accuracy, wall time) and the
training-step time of each activation relative to GELU (interleaved steps, same run).

    python benchmarks/image_report.py                      # gelu, hermite:3, fourier:5, tropical:5
    python benchmarks/image_report.py --acts gelu --skip-step-time
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

from orthoact.models.convnext import ConvNeXt
from orthoact.train.image import resolve_config, train_image


def step_times(acts: list[str], steps: int) -> dict[str, float]:
    cfg = resolve_config("fmnist-convnext")
    batch = cfg["train"].batch_size
    g = torch.Generator().manual_seed(0)
    x = torch.randn(batch, 1, 28, 28, generator=g)
    y = torch.randint(0, 10, (batch,), generator=g)
    runs = {}
    for act in acts:
        import dataclasses

        torch.manual_seed(0)
        model = ConvNeXt(dataclasses.replace(cfg["model"], activation=act))
        runs[act] = (model, torch.optim.AdamW(model.parameters(), lr=1e-3))
    samples = {a: [] for a in acts}
    for i in range(steps + 2):
        for act, (model, opt) in runs.items():
            start = time.perf_counter()
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if i >= 2:
                samples[act].append(time.perf_counter() - start)
    return {a: statistics.median(v) for a, v in samples.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--acts", nargs="+", default=["gelu", "hermite:3", "fourier:5", "tropical:5"])
    parser.add_argument("--skip-step-time", action="store_true")
    parser.add_argument("--skip-training", action="store_true")
    parser.add_argument("--out-dir", default="runs/fmnist-report")
    parser.add_argument("--out", default="bench_results/image_report.json")
    args = parser.parse_args()
    report = {}
    if not args.skip_step_time:
        times = step_times(args.acts, 20)
        report["step_time"] = times
        print(f"fmnist-convnext step time (batch 128, median of 20 interleaved steps, {torch.get_num_threads()} threads):")
        for act, t in times.items():
            print(f"  {act:<14} {t:.3f} s  {t / times['gelu']:.2f}x GELU" if "gelu" in times else f"  {act:<14} {t:.3f} s")
        if "gelu" in times and "hermite:3" in times:
            r = times["hermite:3"] / times["gelu"]
            print(f"  target Hermite-3 <= 1.05x GELU: {r:.2f} ({'met' if r <= 1.05 else 'NOT met'})", flush=True)
    if not args.skip_training:
        report["runs"] = {}
        for act in args.acts:
            start = time.perf_counter()
            metrics = train_image("fmnist-convnext", [f"act={act}", f"train.out_dir={args.out_dir}/{act.replace(':', '-')}",
                                                      "train.progress=false"])
            wall = time.perf_counter() - start
            report["runs"][act] = {**metrics, "wall_s": wall}
            print(f"{act:<14} top1 {metrics['top1']:.2f}%  top5 {metrics['top5']:.2f}%  val loss {metrics['val_loss']:.4f}  "
                  f"wall {wall / 60:.1f} min", flush=True)
        if "gelu" in report["runs"]:
            g = report["runs"]["gelu"]
            ok = g["top1"] >= 90.0 and g["wall_s"] <= 600
            print(f"target GELU >= 90% top-1 in <= 10 min: {g['top1']:.2f}% in {g['wall_s'] / 60:.1f} min ({'met' if ok else 'NOT met'})")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
