"""``orthoact sweep``: every (grid cell, activation, seed) of a preset through the trainer, one folder
per run, resumable, then a summary with error bars.

    orthoact sweep --preset shakespeare-char --act gelu,hermite:3,tropical:5 --seeds 0,1,2 \\
        train.max_steps=1000 train.act_lr_mult=1,10 --out runs/sweep-lm --jobs 2

* Overrides are ``key=value`` as for ``orthoact train``; a comma list (``train.act_lr_mult=1,10``) makes a
  grid, each combination a *cell*. ``act.KEY=v1,v2`` passes a constructor option to every activation
  that takes it (``act.init=paper,gelu``); an activation can also carry its own options,
  ``--act 'hermite:3(init=gelu)'``.
* Runs live in ``OUT/<cell>/<activation>-s<seed>``. Finished runs are skipped, interrupted ones resume
  from their checkpoint, a failed run is reported by name (its error in ``error.log``) and the others go
  on. ``--jobs N`` runs N processes at once, each with cores/N threads.
* The summary (``OUT/summary.md``, ``OUT/summary.json`` and figures, written at the end and by
  ``orthoact sweep --summarize OUT``) gives per cell: mean +- standard deviation over seeds of the final
  metric, the median step time as a ratio to the first activation, and each activation's paired
  difference to the first with a 95% t-interval over seeds (see :mod:`orthoact.analysis.sweeps`).
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from orthoact.registry import parse_spec
from orthoact.train.config import load_preset, slug
from orthoact.train.trainer import read_metrics

DONE_FILE = "result.json"
ERROR_FILE = "error.log"


@dataclass
class Run:
    cell: str  # e.g. "train.act_lr_mult=10" ("base" when the grid has one cell)
    cell_overrides: list[str]
    act: str
    seed: int
    folder: Path
    effective: list[str] = field(default_factory=list)  # the overrides that matter for this activation
    status: str = "pending"  # pending | done | failed
    seconds: float = 0.0
    error: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def name(self) -> str:
        return f"{self.cell}/{slug(self.act)}-s{self.seed}"


def split_top_level(text: str, sep: str = ",") -> list[str]:
    """Split on ``sep`` outside parentheses: ``"gelu,hermite:3(init=gelu,groups=2)"`` -> two items."""
    out, depth, current = [], 0, ""
    for ch in text:
        depth += (ch == "(") - (ch == ")")
        if ch == sep and depth == 0:
            out.append(current)
            current = ""
        else:
            current += ch
    out.append(current)
    return [item.strip() for item in out if item.strip()]


def accepted_options(act: str) -> set[str]:
    """Constructor keywords a family's module takes (none for a classical baseline)."""
    import inspect

    from orthoact import family as families
    from orthoact.activation import BasisActivation

    name, _ = parse_spec(act)
    if name not in families.names():
        return set()
    spec = families.get(name)
    keywords = {p.name for cls in (spec.module, BasisActivation) for p in inspect.signature(cls.__init__).parameters.values()
                if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)}
    return (keywords | {o.name for o in spec.options}) - {"self", "device", "dtype", *spec.degree_args}


def with_options(act: str, options: dict) -> str:
    """``act`` plus the constructor options it accepts (others leave it as it is: the same run)."""
    options = {k: v for k, v in options.items() if k in accepted_options(act)}
    if not options:
        return act
    base, _, inside = act.partition("(")
    merged = dict(item.split("=", 1) for item in split_top_level(inside.rstrip(")"))) if inside else {}
    merged.update({k: str(v) for k, v in options.items()})
    return f"{base}({','.join(f'{k}={v}' for k, v in merged.items())})"


RESERVED = {"act": "--act", "activation": "--act", "model.activation": "--act", "seed": "--seeds", "train.seed": "--seeds",
            "out_dir": "--out", "train.out_dir": "--out", "resume": "(automatic)", "train.resume": "(automatic)",
            "overwrite": "(automatic)", "train.overwrite": "(automatic)"}


def plan(preset: str, kind: str, acts: list[str], seeds: list[int], overrides: list[str], out: Path) -> list[Run]:
    """Every run of the sweep, in order: cell, then seed, then activation (so a partial sweep already
    compares activations on the same seeds)."""
    if not acts:
        raise ValueError("--act needs at least one activation, e.g. --act gelu,hermite:3")
    for act in acts:
        parse_spec(act)  # unknown names fail before anything runs
    if not seeds:
        raise ValueError("--seeds needs at least one seed, e.g. --seeds 0,1,2")
    fixed, axes, act_axes = [], [], []
    for item in overrides:
        if "=" not in item:
            raise ValueError(f"override {item!r} must be key=value")
        key, value = item.split("=", 1)
        if key.strip() in RESERVED:
            raise ValueError(f"the sweep sets {key.strip()} itself (use {RESERVED[key.strip()]}); got the override {item!r}")
        values = split_top_level(value)
        if key.startswith("act."):
            act_axes.append((key[4:], values))
        elif len(values) > 1:
            axes.append((key, values))
        else:
            fixed.append(item)
    keys = [k for k, _ in axes] + [f"act.{k}" for k, _ in act_axes]
    from orthoact import family as families

    runs, seen = [], {}
    for combo in itertools.product(*[v for _, v in axes], *[v for _, v in act_axes]):
        cell_items = [f"{k}={v}" for k, v in zip(keys, combo)]
        cell = ",".join(cell_items) if cell_items else "base"
        act_options = dict(zip([k for k, _ in act_axes], combo[len(axes):]))
        cell_overrides = fixed + [f"{k}={v}" for (k, _), v in zip(axes, combo[: len(axes)])]
        for seed in seeds:
            for act in acts:
                full_act = with_options(act, act_options)
                run = Run(cell, cell_overrides, full_act, seed, out / slug(cell) / f"{slug(act)}-s{seed}")
                # A baseline without learnable activation parameters (gelu) is the same run in every
                # cell that only changes the activations' learning-rate multiplier: run it once.
                effective = run.cell_overrides
                if parse_spec(full_act)[0] not in families.names():
                    effective = [o for o in effective if not o.startswith(("train.act_lr_mult=", "act_lr_mult="))]
                run.effective = list(effective)
                key = (full_act, seed, tuple(sorted(effective)))
                if key in seen:
                    run.folder = seen[key]
                else:
                    seen[key] = run.folder
                runs.append(run)
    return runs


def finished(run: Run) -> bool:
    """Whether the run's folder holds a finished run of these very settings (a folder of another
    sweep's settings is refused: a summary never mixes them)."""
    path = run.folder / DONE_FILE
    if not path.is_file():
        return False
    recorded = json.loads(path.read_text()).get("settings")
    if recorded is not None and recorded != settings(run):
        raise ValueError(f"{run.folder} holds a finished run with other settings ({recorded}, not {settings(run)}); "
                         "give this sweep another --out")
    return True


def settings(run: Run) -> dict:
    return {"act": run.act, "seed": run.seed, "overrides": sorted(run.effective or run.cell_overrides)}


def command(kind: str, preset: str, run: Run, threads: int) -> list[str]:
    args = [f"act={run.act}", f"train.seed={run.seed}", f"train.out_dir={run.folder}", "train.progress=false",
            f"train.threads={threads}", *run.cell_overrides]
    if (run.folder / "ckpt.pt").is_file():
        args.append("train.resume=true")  # interrupted: continue exactly
    elif (run.folder / "metrics.jsonl").exists() or (run.folder / "config.json").exists():
        args.append("train.overwrite=true")  # started but never checkpointed: start again
    return [sys.executable, "-m", "orthoact", "train", kind, "--preset", preset, *args]


def _record(run: Run) -> None:
    """Write the run's final metrics to result.json (the marker of a finished run)."""
    final = [r for r in read_metrics(run.folder) if "val_loss" in r]
    result = {"act": run.act, "seed": run.seed, "cell": run.cell, "final": final[-1] if final else {},
              "seconds": run.seconds, "settings": settings(run)}
    (run.folder / DONE_FILE).write_text(json.dumps(result, indent=2))


def execute(kind: str, preset: str, runs: list[Run], jobs: int = 1, log=print) -> list[Run]:
    """Run what is not finished, ``jobs`` processes at once; returns the runs with their status."""
    cores = os.cpu_count() or 1
    threads = max(1, cores // jobs)
    todo, folders = [], set()
    for run in runs:
        if finished(run):
            run.status = "done"
        elif run.folder not in folders:  # a run shared by several cells runs once
            todo.append(run)
        folders.add(run.folder)
    total = len({r.folder for r in runs})
    skipped = total - len(todo)
    log(f"sweep: {total} runs, {skipped} already finished, {len(todo)} to run, {jobs} at a time ({threads} threads each)")
    start = time.perf_counter()
    active: list[tuple[Run, subprocess.Popen, float]] = []
    queue = list(todo)
    done = 0
    while queue or active:
        while queue and len(active) < jobs:
            run = queue.pop(0)
            run.folder.mkdir(parents=True, exist_ok=True)
            (run.folder / ERROR_FILE).unlink(missing_ok=True)
            log_file = open(run.folder / "train.log", "a")  # an interrupted run's log is kept
            proc = subprocess.Popen(command(kind, preset, run, threads), stdout=log_file, stderr=subprocess.STDOUT,
                                    env=dict(os.environ, OMP_NUM_THREADS=str(threads)))
            proc.log_file = log_file
            active.append((run, proc, time.perf_counter()))
            log(f"[{skipped + done + len(active)}/{total}] started {run.name}")
        time.sleep(0.5)
        for item in list(active):
            run, proc, began = item
            if proc.poll() is None:
                continue
            active.remove(item)
            proc.log_file.close()
            run.seconds = time.perf_counter() - began
            done += 1
            if proc.returncode == 0:
                run.status = "done"
                _record(run)
            else:
                run.status = "failed"
                tail = (run.folder / "train.log").read_text(errors="replace").strip().splitlines()[-15:]
                run.error = "\n".join(tail)
                (run.folder / ERROR_FILE).write_text(run.error + "\n")
            elapsed = time.perf_counter() - start
            left = len(queue) + len(active)
            eta = elapsed / done * left if done else 0.0
            log(f"[{skipped + done}/{total}] {run.status} {run.name} in {run.seconds:.0f} s"
                + (f"; {left} left, ETA {eta / 60:.0f} min" if left else ""))
            if run.status == "failed":
                log(f"    {run.name} failed: {run.error.splitlines()[-1] if run.error else 'no output'} "
                    f"(full log: {run.folder / 'train.log'})")
    return runs


def sweep(preset: str, acts: list[str], seeds: list[int], overrides: list[str], out: str | Path | None = None,
          jobs: int = 1, log=print) -> Path:
    """Plan, run and summarize a sweep; returns the output folder."""
    kind = _kind(preset)
    out = Path(out or f"runs/sweep-{Path(preset).stem}")
    out.mkdir(parents=True, exist_ok=True)
    runs = plan(preset, kind, acts, seeds, overrides, out)
    (out / "sweep.json").write_text(json.dumps({
        "preset": preset, "kind": kind, "acts": acts, "seeds": seeds, "overrides": overrides,
        "runs": [{"cell": r.cell, "act": r.act, "seed": r.seed, "folder": str(r.folder.relative_to(out))} for r in runs],
    }, indent=2))
    execute(kind, preset, runs, jobs, log)
    for run in runs:  # cells that share a run (a baseline) see its status
        run.status = "done" if (run.folder / DONE_FILE).is_file() else run.status
    from orthoact.analysis.sweeps import summarize

    summarize(out, log=log)
    failed = [r for r in runs if r.status == "failed"]
    if failed:
        log("failed runs (the summary leaves them out): " + ", ".join(r.name for r in failed))
    return out


def _kind(preset: str) -> str:
    for kind in ("lm", "image"):
        try:
            load_preset(preset, kind)
            return kind
        except ValueError as error:
            if "unknown preset" in str(error):
                raise
    raise ValueError(f"preset {preset!r} is neither a language-model nor an image preset")
