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

from orthoact._io import write_atomic, write_json
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


def as_number(text: str) -> float | None:
    """``float(text)``, or ``None`` when the text is no number."""
    try:
        return float(text)
    except (TypeError, ValueError):
        return None


def sorted_values(values: list[str]) -> list[str]:
    """Numeric order when every value is a number, else as given."""
    numbers = [as_number(v) for v in values]
    return [v for _, v in sorted(zip(numbers, values))] if None not in numbers else list(values)


def step_seconds(rows: list[dict]) -> float | None:
    """Median seconds per training step from the logged cumulative training time."""
    points = [(r["step"], r["train_seconds"]) for r in rows if "train_seconds" in r]
    rates = [(t1 - t0) / (s1 - s0) for (s0, t0), (s1, t1) in zip(points, points[1:]) if s1 > s0 and t1 > t0]
    return statistics.median(rates) if rates else None


def last_quarter_change(curve: list[tuple[int, float]]) -> float | None:
    """Final validation loss minus the one at (about) three quarters of the run, from evaluations
    ``(step, loss)``: how much the loss still moved at the end (``None`` with fewer than 3 points)."""
    if len(curve) < 3:
        return None
    last_step, last = curve[-1]
    step, loss = min(curve[:-1], key=lambda point: abs(point[0] - 0.75 * last_step))
    return last - loss


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
        runs.append({"stage": "final", "value": None, **entry, "path": folder, "done": done,
                     "failed": (folder / "error.log").is_file(),
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


def _final_runs(sweep: dict, cell: str) -> list[dict]:
    """The runs of one cell that the comparison is about (a tuned sweep's stage 2)."""
    return [r for r in sweep["runs"] if r["cell"] == cell and r["stage"] != "tune"]


def tune_grid(sweep: dict) -> dict:
    """Stage 1 of a tuned sweep: per cell and activation, the tried values (numeric order), the mean
    final validation loss (image recipes: test loss) over the tune seeds at each, the best value and
    ``edge``: ``"low"``/``"high"`` when the best is the grid's lowest/highest value (the optimum may
    lie beyond it), else ``None``. A run that diverged (non-finite loss) counts as the worst."""
    grid: dict = {}
    for r in sweep["runs"]:
        if r["stage"] != "tune":
            continue
        entry = grid.setdefault(r["cell"], {}).setdefault(r["act"], {"values": [], "losses": {}, "seeds": {}})
        if r["value"] not in entry["values"]:
            entry["values"].append(r["value"])
        loss = r["final"].get("val_loss") if r["done"] else None
        if loss is not None:
            entry["seeds"].setdefault(r["value"], []).append(loss if math.isfinite(loss) else math.inf)
    for by_act in grid.values():
        for entry in by_act.values():
            entry["values"] = sorted_values(entry["values"])
            entry["losses"] = {v: statistics.fmean(entry["seeds"][v]) for v in entry["values"] if v in entry["seeds"]}
            finite = {v: loss for v, loss in entry["losses"].items() if math.isfinite(loss)}
            entry["best"] = min(finite, key=finite.get) if finite else None
            ends = {entry["values"][0]: "low", entry["values"][-1]: "high"} if len(entry["values"]) > 1 else {}
            entry["edge"] = ends.get(entry["best"])
    return grid


def tune_table(sweep: dict, cell: str, grid: dict) -> str:
    """Markdown table of stage 1 in one cell: activations x tried values, the chosen one in bold."""
    tune = sweep["plan"]["tune"]
    by_act = grid.get(cell, {})
    values = sorted_values(list(dict.fromkeys(v for e in by_act.values() for v in e["values"])))
    head = ["activation", *[f"{tune['key']}={v}" for v in values], "chosen", "note"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for act, e in by_act.items():
        cells = [f"`{act}`"]
        for v in values:
            loss = e["losses"].get(v)
            text = "-" if loss is None else ("diverged" if not math.isfinite(loss) else f"{loss:.4f}")
            cells.append(f"**{text}**" if v == e["best"] else text)
        cells.append("-" if e["best"] is None else str(e["best"]))
        note = "every run failed" if e["best"] is None else ""
        if e["edge"]:
            note = f"best at the {'lowest' if e['edge'] == 'low' else 'highest'} value: optimum may lie beyond the grid"
        cells.append(note)
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot_tune(sweep: dict, cell: str, grid: dict, path: Path) -> Path | None:
    """Final loss against the tuned value per activation (log axis for positive numbers), the chosen
    value marked."""
    from orthoact.analysis.plots import pyplot, save_figure

    by_act = grid.get(cell, {})
    if not by_act:
        return None
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    numeric = all(as_number(v) is not None for e in by_act.values() for v in e["values"])
    for i, (act, e) in enumerate(by_act.items()):
        points = [(v, loss) for v, loss in e["losses"].items() if math.isfinite(loss)]
        xs = [as_number(v) if numeric else e["values"].index(v) for v, _ in points]
        ax.plot(xs, [loss for _, loss in points], color=f"C{i}", marker="o", lw=1.5, label=act)
        if e["best"] is not None:
            ax.plot([as_number(e["best"]) if numeric else e["values"].index(e["best"])], [e["losses"][e["best"]]],
                    color=f"C{i}", marker="*", ms=14, ls="none")
    if numeric and all(as_number(v) > 0 for e in by_act.values() for v in e["values"]):
        ax.set_xscale("log")
    key = sweep["plan"]["tune"]["key"]
    ax.set_xlabel(key)
    ax.set_ylabel("final validation loss (mean over tune seeds)")
    ax.set_title(f"stage 1: {cell} (star: chosen)", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return save_figure(fig, path)


def cell_table(sweep: dict, cell: str) -> tuple[str, list[dict]]:
    """Markdown table of one cell and its rows as data."""
    kind = sweep["plan"]["kind"]
    metrics = _metrics(kind)
    headline = metrics[0][0]
    runs = _final_runs(sweep, cell)
    tuned = "tune" in sweep["plan"]
    acts = list(dict.fromkeys(r["act"] for r in runs))
    by_act = {a: {r["seed"]: r for r in runs if r["act"] == a and r["done"] and r["final"]} for a in acts}
    first = acts[0]
    first_time = statistics.median([r["step_seconds"] for r in by_act[first].values() if r["step_seconds"]] or [math.nan])
    rows = []
    for act in acts:
        seeds = sorted(by_act[act])
        entry = {"act": act, "seeds": seeds}
        if tuned:
            entry["value"] = next((r["value"] for r in runs if r["act"] == act), None)
        for key, _, _ in metrics:
            values = [by_act[act][s]["final"].get(key) for s in seeds if by_act[act][s]["final"].get(key) is not None]
            entry[key] = (statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else None) if values else (None, None)
        changes = [c for s in seeds for c in [last_quarter_change(by_act[act][s]["curve"])] if c is not None]
        entry["last_quarter_change"] = statistics.fmean(changes) if changes else None
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
    head = ["activation", *([f"tuned {sweep['plan']['tune']['key']}"] if tuned else []), "seeds",
            *[label for _, label, _ in metrics], f"{metrics[0][1]} - {first} (95% CI)", f"step time / {first}",
            "loss change, last quarter"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for e in rows:
        cells = [f"`{e['act']}`"] + ([str(e["value"])] if tuned else []) + [str(len(e["seeds"]))]
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
        cells.append("-" if e["last_quarter_change"] is None else f"{e['last_quarter_change']:+.4f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines), rows


def plot_cell(sweep: dict, cell: str, path: Path) -> Path:
    """Validation-loss curves, mean over seeds with a +-1 standard deviation band, per activation."""
    from orthoact.analysis.plots import pyplot, save_figure

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    runs = [r for r in _final_runs(sweep, cell) if r["done"]]
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

    from orthoact.analysis.plots import curves, pyplot, save_figure
    from orthoact.analysis.runs import module_from_snapshot

    runs = [r for r in _final_runs(sweep, cell) if r["done"]]
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
    plt = pyplot()
    fig, axes = plt.subplots(1, len(panels), figsize=(3.8 * len(panels), 3.3), squeeze=False)
    x = torch.linspace(-4, 4, 401, dtype=torch.float64)
    for ax, (act, snapshot) in zip(axes.flat, panels):
        for j, (name, entry) in enumerate(snapshot["modules"].items()):
            y, _ = curves(module_from_snapshot(entry), x, 0)
            ax.plot(x, y, color=f"C{j}", lw=1.2, label=name.split(".")[-3] if name.count(".") >= 3 else name)
        ax.plot(x, torch.nn.functional.gelu(x), "k:", lw=1, label="gelu")
        ax.set_title(f"{act} (step {snapshot['step']})", fontsize=8)
        ax.grid(alpha=0.3)
    axes.flat[0].legend(fontsize=6)
    return save_figure(fig, path)


def _describe_tune(tune: dict) -> str:
    parts = [f"--tune {tune['key']}={','.join(tune['values'])}", f"--tune-seeds {','.join(map(str, tune['seeds']))}"]
    parts += [f"--tune-override {o}" for o in tune["overrides"]]
    return " ".join(parts + (["--tune-extend"] if tune.get("extend") else []))


def summarize(out: str | Path, log=print) -> dict:
    """Write ``summary.md``, ``summary.json`` and per-cell figures into the sweep folder; return the data."""
    sweep = load_sweep(out)
    out = Path(out)
    plan = sweep["plan"]
    cells = list(dict.fromkeys(r["cell"] for r in sweep["runs"]))
    done = sum(r["done"] for r in sweep["runs"])
    failed = [r for r in sweep["runs"] if r["failed"] and not r["done"]]
    tune = plan.get("tune")
    command = " ".join([f"orthoact sweep --preset {plan['preset']}", f"--act '{','.join(plan['acts'])}'",
                        f"--seeds {','.join(map(str, plan['seeds']))}", *plan["overrides"]]
                       + ([_describe_tune(tune)] if tune else []))
    lines = [f"# Sweep of `{plan['preset']}`", "", f"Command: `{command}`", "",
             f"{done} of {len(sweep['runs'])} runs finished." + (f" Failed: {', '.join(r['folder'] for r in failed)}." if failed else ""),
             "Paired differences compare each activation with the first one on the same seeds; "
             "**beyond seed noise** marks a 95% interval that excludes 0. The last column is the mean change of "
             "the validation loss over the last quarter of training (near 0: the loss has flattened).", ""]
    data = {"plan": plan, "cells": {}}
    try:
        import matplotlib  # noqa: F401

        can_plot = True
    except ImportError:
        can_plot = False
    grid = tune_grid(sweep) if tune else {}
    if tune:
        data["tune"] = grid
        metric = "test loss" if plan["kind"] == "image" else "validation loss"
        lines += ["## Stage 1: tuning " + f"`{tune['key']}`", "",
                  f"Every activation at every value (seeds {', '.join(map(str, tune['seeds']))}"
                  + (f"; with {', '.join(tune['overrides'])}" if tune["overrides"] else "")
                  + f"); each activation's value is the one with the lowest final {metric} (mean over the tune seeds)"
                  + (", and a best value at an edge of the grid added the next value on that side (at most twice)."
                     if tune.get("extend") else "."), ""]
    for cell in cells:
        if tune:
            lines += [f"### {cell}", "", tune_table(sweep, cell, grid), ""]
            if can_plot:
                figure = plot_tune(sweep, cell, grid, out / f"tune_{slug(cell)}.png")
                if figure is not None:
                    lines += [f"![stage 1, {cell}]({figure.name})", ""]
    for cell in cells:
        table, rows = cell_table(sweep, cell)
        data["cells"][cell] = rows
        heading = f"Stage 2: {cell}, each activation at its chosen {tune['key']}" if tune else cell
        lines += [f"## {heading}", "", table, ""]
        if can_plot and any(r["done"] for r in _final_runs(sweep, cell)):
            curves = plot_cell(sweep, cell, out / f"curves_{slug(cell)}.png")
            lines.append(f"![validation loss, {cell}]({curves.name})")
            acts = plot_cell_activations(sweep, cell, out / f"activations_{slug(cell)}.png")
            if acts is not None:
                lines.append(f"![learned activations, {cell}]({acts.name})")
            lines.append("")
    write_atomic(out / "summary.md", lambda tmp: Path(tmp).write_text("\n".join(lines)))
    write_json(out / "summary.json", data)
    log(f"wrote {out / 'summary.md'}")
    return data


