"""Comparing training runs: loss curves, the evolution of learned activations, a summary table.

A run folder (written by the trainer) holds ``config.json``, ``metrics.jsonl`` (train loss every few
steps, evaluation rows with ``val_loss``/accuracies) and ``activations.jsonl`` (snapshots of every
activation's parameters).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from orthoact import declarations
from orthoact.analysis.plots import curves, pyplot, save_figure
from orthoact.train.trainer import read_metrics


def read_run(run: str | Path) -> dict:
    run = Path(run)
    if not (run / "metrics.jsonl").is_file():
        raise FileNotFoundError(f"{run} is not a run folder (no metrics.jsonl)")
    rows = read_metrics(run)
    config = json.loads((run / "config.json").read_text()) if (run / "config.json").exists() else {}
    snapshots_file = run / "activations.jsonl"
    snapshots = [json.loads(line) for line in snapshots_file.read_text().splitlines()] if snapshots_file.exists() else []
    return {"path": run, "name": run.name, "rows": rows, "config": config, "snapshots": snapshots}


def activation_label(config: dict) -> str:
    return str(config.get("model", {}).get("activation", "?"))


def plot_losses(runs: list[dict], path) -> Path:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    for i, run in enumerate(runs):
        train = [(r["step"], r["train_loss"]) for r in run["rows"] if "train_loss" in r]
        val = [(r["step"], r["val_loss"]) for r in run["rows"] if "val_loss" in r]
        label = f"{run['name']} ({activation_label(run['config'])})"
        if train:
            ax.plot(*zip(*train), color=f"C{i}", alpha=0.35, lw=1)
        if val:
            ax.plot(*zip(*val), color=f"C{i}", marker="o", lw=2, label=f"{label} val")
    ax.set_xlabel("step")
    ax.set_ylabel("loss (thin: train, markers: validation)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return save_figure(fig, path)


def module_from_snapshot(entry: dict):
    """The module a snapshot describes (its ``config``; older snapshots give degree and groups)."""
    spec = declarations.get(entry["family"])
    config = entry.get("config") or {"degree": entry["degree"], "groups": entry["groups"]}
    module = spec.module.from_config(config, dtype=torch.float64)
    with torch.no_grad():
        for name, value in entry["parameters"].items():
            getattr(module, name).copy_(torch.tensor(value, dtype=torch.float64))
    return module


def plot_evolution(run: dict, path, x_range=(-4.0, 4.0), max_modules: int = 8) -> Path | None:
    """Each activation's shape at every snapshot, coloured from early (light) to late (dark)."""
    if not run["snapshots"] or not run["snapshots"][0]["modules"]:
        return None
    plt = pyplot()
    names = list(run["snapshots"][0]["modules"])[:max_modules]
    fig, axes = plt.subplots(1, len(names), figsize=(3.6 * len(names), 3.3), squeeze=False)
    x = torch.linspace(*x_range, 401, dtype=torch.float64)
    cmap = plt.get_cmap("viridis")
    steps = [s["step"] for s in run["snapshots"]]
    for ax, name in zip(axes.flat, names):
        for i, snap in enumerate(run["snapshots"]):
            y, _ = curves(module_from_snapshot(snap["modules"][name]), x, 0)
            label = f"step {snap['step']}" if i in (0, len(steps) - 1) else None
            ax.plot(x, y, color=cmap(i / max(1, len(steps) - 1)), lw=1.2, label=label)
        ax.set_title(name if len(name) < 40 else "..." + name[-37:], fontsize=8)
        ax.grid(alpha=0.3)
    axes.flat[0].legend(fontsize=7)
    fig.suptitle(f"{run['name']}: activation shapes over training", fontsize=10)
    return save_figure(fig, path)


def summary_table(runs: list[dict]) -> str:
    """Markdown table of the final metrics of each run."""
    metric_keys = []
    for run in runs:
        for row in run["rows"]:
            for key in row:
                if key not in ("step", "time", "lr", "train_loss", "train_seconds") and key not in metric_keys:
                    metric_keys.append(key)
    header = ["run", "activation", "steps", "wall time (s)", *metric_keys]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for run in runs:
        last = {}
        for row in run["rows"]:
            last.update(row)
        cells = [run["name"], activation_label(run["config"]), str(last.get("step", "")), f"{last.get('time', float('nan')):.0f}"]
        cells += [f"{last[k]:.4f}" if isinstance(last.get(k), float) else str(last.get(k, "")) for k in metric_keys]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot_runs(run_paths: list[str | Path], out_dir: str | Path) -> dict[str, Path]:
    """Loss curves, per-run activation evolution and summary.md into ``out_dir``."""
    runs = [read_run(p) for p in run_paths]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = {"losses": plot_losses(runs, out / "loss_curves.png")}
    for run in runs:
        evo = plot_evolution(run, out / f"evolution_{run['name']}.png")
        if evo is not None:
            written[f"evolution_{run['name']}"] = evo
    (out / "summary.md").write_text(summary_table(runs) + "\n")
    written["summary"] = out / "summary.md"
    return written
