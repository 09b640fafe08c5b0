"""Summaries of ``orthoact sweep`` folders: error bars over seeds, paired differences, loss bands.

For each grid cell and activation: the mean and standard deviation over seeds of the final metric
(validation loss and perplexity for language models, test top-1 and loss for images), the median step
time as a ratio to the first activation listed, and the paired difference to the first activation
(same seed, same data order) with a 95% t-interval over seeds. A difference whose interval excludes 0
is larger than the seed-to-seed noise; one whose interval contains 0 is not.
"""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path

from orthoact.train.config import slug
from orthoact.train.trainer import read_metrics

# two-sided 95% quantiles of Student's t, by degrees of freedom (1..30); above: 1.96
_T975 = [12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131,
         2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042]


def t975(df: int) -> float:
    """The two-sided 95% quantile of Student's t with ``df`` degrees of freedom (a table to 30, then
    the Cornish-Fisher expansion, accurate to 1e-3)."""
    if 1 <= df <= len(_T975):
        return _T975[df - 1]
    z = 1.959964
    return z + (z**3 + z) / (4 * df) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * df**2)


def prediction_half_width(values: list[float]) -> float | None:
    """Half-width of the 95% prediction interval of one more value like ``values`` (a single new
    seed): ``t * s * sqrt(1 + 1/n)``."""
    if len(values) < 2:
        return None
    n = len(values)
    return t975(n - 1) * statistics.stdev(values) * math.sqrt(1 + 1 / n)


def mean_interval(values: list[float]) -> tuple[float, float | None]:
    """Mean and the half-width of its 95% t-interval (None with fewer than 2 values)."""
    m = statistics.fmean(values)
    if len(values) < 2:
        return m, None
    return m, t975(len(values) - 1) * statistics.stdev(values) / math.sqrt(len(values))


def step_seconds(rows: list[dict]) -> float | None:
    """Median seconds per training step from the logged cumulative training time."""
    points = [(r["step"], r["train_seconds"]) for r in rows if "train_seconds" in r]
    rates = [(t1 - t0) / (s1 - s0) for (s0, t0), (s1, t1) in zip(points, points[1:]) if s1 > s0 and t1 > t0]
    return statistics.median(rates) if rates else None


def load_sweep(out: str | Path) -> dict:
    """The sweep's plan and, for every finished run, its final metrics, curve and step time."""
    out = Path(out)
    plan_file = out / "sweep.json"
    if not plan_file.is_file():
        raise FileNotFoundError(f"{out} is not a sweep folder (no sweep.json); run orthoact sweep first")
    plan = json.loads(plan_file.read_text())
    runs = []
    for entry in plan["runs"]:
        folder = out / entry["folder"]
        done = (folder / "result.json").is_file()
        rows = read_metrics(folder) if done else []
        evals = [r for r in rows if "val_loss" in r]
        runs.append({**entry, "path": folder, "done": done, "failed": (folder / "error.log").is_file(),
                     "final": evals[-1] if evals else {}, "curve": [(r["step"], r["val_loss"]) for r in evals],
                     "step_seconds": step_seconds(rows)})
    return {"plan": plan, "runs": runs, "out": out}


def _metrics(kind: str) -> list[tuple[str, str, bool]]:
    """(key, label, higher is better) reported per kind; the first is the headline."""
    if kind == "image":
        return [("top1", "test top-1 %", True), ("val_loss", "test loss", False)]
    return [("val_loss", "val loss", False), ("val_ppl", "val ppl", False)]


def _fmt(value: float | None, digits: int = 4) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def cell_table(sweep: dict, cell: str) -> tuple[str, list[dict]]:
    """Markdown table of one cell and its rows as data."""
    kind = sweep["plan"]["kind"]
    metrics = _metrics(kind)
    headline = metrics[0][0]
    runs = [r for r in sweep["runs"] if r["cell"] == cell]
    acts = list(dict.fromkeys(r["act"] for r in runs))
    by_act = {a: {r["seed"]: r for r in runs if r["act"] == a and r["done"] and r["final"]} for a in acts}
    first = acts[0]
    first_time = statistics.median([r["step_seconds"] for r in by_act[first].values() if r["step_seconds"]] or [math.nan])
    rows = []
    for act in acts:
        seeds = sorted(by_act[act])
        entry = {"act": act, "seeds": seeds}
        for key, _, _ in metrics:
            values = [by_act[act][s]["final"].get(key) for s in seeds if by_act[act][s]["final"].get(key) is not None]
            entry[key] = (statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else None) if values else (None, None)
        times = [by_act[act][s]["step_seconds"] for s in seeds if by_act[act][s]["step_seconds"]]
        entry["step_time_ratio"] = statistics.median(times) / first_time if times and first_time == first_time else None
        paired = [by_act[act][s]["final"][headline] - by_act[first][s]["final"][headline]
                  for s in seeds if s in by_act[first] and headline in by_act[act][s]["final"]]
        if act != first and paired:
            m, half = mean_interval(paired)
            entry["paired"] = {"n": len(paired), "mean": m, "half": half, "values": paired,
                               "sd": statistics.stdev(paired) if len(paired) > 1 else None,
                               "beyond_noise": half is not None and abs(m) > half}
        rows.append(entry)
    head = ["activation", "seeds"] + [label for _, label, _ in metrics] + [f"{metrics[0][1]} - {first} (95% CI)",
                                                                          f"step time / {first}"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for e in rows:
        cells = [f"`{e['act']}`", str(len(e["seeds"]))]
        for key, _, _ in metrics:
            m, s = e[key]
            digits = 2 if key in ("top1", "val_ppl") else 4
            cells.append("-" if m is None else f"{m:.{digits}f}" + (f" ± {s:.{digits}f}" if s is not None else ""))
        p = e.get("paired")
        if e["act"] == first:
            cells.append("(reference)")
        elif p is None:
            cells.append("-")
        else:
            digits = 2 if headline == "top1" else 4
            ci = f" ± {p['half']:.{digits}f}" if p["half"] is not None else " (1 seed: no interval)"
            cells.append(f"{p['mean']:+.{digits}f}{ci}" + (" **beyond seed noise**" if p["beyond_noise"] else ""))
        cells.append(_fmt(e["step_time_ratio"], 2))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines), rows


def plot_cell(sweep: dict, cell: str, path: Path) -> Path:
    """Validation-loss curves, mean over seeds with a +-1 standard deviation band, per activation."""
    from orthoact.analysis.plots import _pyplot, save_figure

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    runs = [r for r in sweep["runs"] if r["cell"] == cell and r["done"]]
    for i, act in enumerate(dict.fromkeys(r["act"] for r in runs)):
        curves = [dict(r["curve"]) for r in runs if r["act"] == act and r["curve"]]
        if not curves:
            continue
        steps = sorted(set.intersection(*(set(c) for c in curves)))
        mean = [statistics.fmean(c[s] for c in curves) for s in steps]
        std = [statistics.stdev([c[s] for c in curves]) if len(curves) > 1 else 0.0 for s in steps]
        few = len(steps) < 5  # e.g. one evaluation per epoch: points and error bars, not a band
        ax.plot(steps, mean, color=f"C{i}", lw=2, marker="o" if few else None, label=f"{act} ({len(curves)} seeds)")
        if few:
            ax.errorbar(steps, mean, yerr=std, color=f"C{i}", capsize=4, ls="none")
        else:
            ax.fill_between(steps, [m - s for m, s in zip(mean, std)], [m + s for m, s in zip(mean, std)],
                            color=f"C{i}", alpha=0.2)
    ax.set_xlabel("step")
    ax.set_ylabel("validation loss (mean ± std over seeds)")
    ax.set_title(cell, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    finals = [m for r in runs for m in [r["final"].get("val_loss")] if m is not None]
    if finals:  # zoom on the end of training, where the activations differ
        lo, hi = min(finals), max(finals)
        ax.set_ylim(lo - 0.5 * (hi - lo + 0.05), hi + 2.0 * (hi - lo + 0.05))
    return save_figure(fig, path)


def plot_cell_activations(sweep: dict, cell: str, path: Path) -> Path | None:
    """Each learned activation of the cell (first seed, last snapshot): every layer's curve."""
    import torch

    from orthoact.analysis.plots import _curves, _pyplot, save_figure
    from orthoact.analysis.runs import _module_from_snapshot

    runs = [r for r in sweep["runs"] if r["cell"] == cell and r["done"]]
    panels = []
    for act in dict.fromkeys(r["act"] for r in runs):
        mine = sorted((r for r in runs if r["act"] == act), key=lambda r: r["seed"])
        path_ = mine[0]["path"] / "activations.jsonl" if mine else None
        if path_ is None or not path_.exists():
            continue
        lines = [json.loads(line) for line in path_.read_text().splitlines() if line.strip()]
        if lines and lines[-1]["modules"]:
            panels.append((act, lines[-1]))
    if not panels:
        return None
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(panels), figsize=(3.8 * len(panels), 3.3), squeeze=False)
    x = torch.linspace(-4, 4, 401, dtype=torch.float64)
    for ax, (act, snapshot) in zip(axes.flat, panels):
        for j, (name, entry) in enumerate(snapshot["modules"].items()):
            y, _ = _curves(_module_from_snapshot(entry), x, 0)
            ax.plot(x, y, color=f"C{j}", lw=1.2, label=name.split(".")[-3] if name.count(".") >= 3 else name)
        ax.plot(x, torch.nn.functional.gelu(x), "k:", lw=1, label="gelu")
        ax.set_title(f"{act} (step {snapshot['step']})", fontsize=8)
        ax.grid(alpha=0.3)
    axes.flat[0].legend(fontsize=6)
    return save_figure(fig, path)


def summarize(out: str | Path, log=print) -> dict:
    """Write ``summary.md``, ``summary.json`` and per-cell figures into the sweep folder; return the data."""
    sweep = load_sweep(out)
    out = Path(out)
    plan = sweep["plan"]
    cells = list(dict.fromkeys(r["cell"] for r in sweep["runs"]))
    done = sum(r["done"] for r in sweep["runs"])
    failed = [r for r in sweep["runs"] if r["failed"] and not r["done"]]
    command = " ".join([f"orthoact sweep --preset {plan['preset']}", f"--act '{','.join(plan['acts'])}'",
                        f"--seeds {','.join(map(str, plan['seeds']))}", *plan["overrides"]])
    lines = [f"# Sweep of `{plan['preset']}`", "", f"Command: `{command}`", "",
             f"{done} of {len(sweep['runs'])} runs finished." + (f" Failed: {', '.join(r['folder'] for r in failed)}." if failed else ""),
             "Paired differences compare each activation with the first one on the same seeds; "
             "**beyond seed noise** marks a 95% interval that excludes 0.", ""]
    data = {"plan": plan, "cells": {}}
    try:
        import matplotlib  # noqa: F401

        can_plot = True
    except ImportError:
        can_plot = False
    for cell in cells:
        table, rows = cell_table(sweep, cell)
        data["cells"][cell] = rows
        lines += [f"## {cell}", "", table, ""]
        if can_plot and any(r["done"] for r in sweep["runs"] if r["cell"] == cell):
            curves = plot_cell(sweep, cell, out / f"curves_{slug(cell)}.png")
            lines.append(f"![validation loss, {cell}]({curves.name})")
            acts = plot_cell_activations(sweep, cell, out / f"activations_{slug(cell)}.png")
            if acts is not None:
                lines.append(f"![learned activations, {cell}]({acts.name})")
            lines.append("")
    (out / "summary.md").write_text("\n".join(lines))
    (out / "summary.json").write_text(json.dumps(data, indent=2, default=str))
    log(f"wrote {out / 'summary.md'}")
    return data


