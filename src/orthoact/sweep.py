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

from orthoact._io import write_json
from orthoact.analysis.sweeps import as_number, sorted_values
from orthoact.registry import family_names, parse_spec
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
    stage: str = "final"  # "tune" (stage 1 of a tuned sweep) or "final"
    value: str | None = None  # the tuned key's value of a tuned sweep's run

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

    from orthoact import declarations
    from orthoact.activation import BasisActivation

    name, _ = parse_spec(act)
    if name not in family_names():
        return set()
    spec = declarations.get(name)
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


def _grid(overrides: list[str]) -> tuple[list[str], list[tuple[str, list[str]]], list[tuple[str, list[str]]]]:
    """Split overrides into fixed ones, grid axes (comma lists) and activation-option axes (``act.KEY``)."""
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
    return fixed, axes, act_axes


def cells(overrides: list[str]) -> list[tuple[str, list[str], dict]]:
    """Every cell of the grid the overrides span: ``(name, overrides, activation options)``."""
    fixed, axes, act_axes = _grid(overrides)
    keys = [k for k, _ in axes] + [f"act.{k}" for k, _ in act_axes]
    out = []
    for combo in itertools.product(*[v for _, v in axes], *[v for _, v in act_axes]):
        cell_items = [f"{k}={v}" for k, v in zip(keys, combo)]
        act_options = dict(zip([k for k, _ in act_axes], combo[len(axes):]))
        cell_overrides = fixed + [f"{k}={v}" for (k, _), v in zip(axes, combo[: len(axes)])]
        out.append((",".join(cell_items) if cell_items else "base", cell_overrides, act_options))
    return out


def _check_names(acts: list[str], seeds: list[int], what: str = "--seeds") -> None:
    if not acts:
        raise ValueError("--act needs at least one activation, e.g. --act gelu,hermite:3")
    for act in acts:
        parse_spec(act)  # unknown names fail before anything runs
    if not seeds:
        raise ValueError(f"{what} needs at least one seed, e.g. {what} 0,1,2")


def _new_run(cell: str, cell_overrides: list[str], act: str, seed: int, folder: Path, seen: dict, **extra) -> Run:
    """A run, sharing the folder of an identical run planned before (same activation, seed and
    overrides that matter for it)."""
    run = Run(cell, cell_overrides, act, seed, folder, **extra)
    # A baseline without learnable activation parameters (gelu) is the same run whatever the
    # activations' learning-rate multiplier: run it once.
    effective = run.cell_overrides
    if parse_spec(act)[0] not in family_names():
        effective = [o for o in effective if not o.startswith(("train.act_lr_mult=", "act_lr_mult="))]
    run.effective = list(effective)
    key = (act, seed, tuple(sorted(effective)))
    run.folder = seen.setdefault(key, folder)
    return run


def plan(preset: str, kind: str, acts: list[str], seeds: list[int], overrides: list[str], out: Path,
         seen: dict | None = None) -> list[Run]:
    """Every run of the sweep, in order: cell, then seed, then activation (so a partial sweep already
    compares activations on the same seeds)."""
    _check_names(acts, seeds)
    seen = {} if seen is None else seen
    runs = []
    for cell, cell_overrides, act_options in cells(overrides):
        for seed in seeds:
            for act in acts:
                runs.append(_new_run(cell, cell_overrides, with_options(act, act_options), seed,
                                     out / slug(cell) / f"{slug(act)}-s{seed}", seen))
    return runs


@dataclass
class Tune:
    """Stage 1 of a tuned sweep: every activation at every value of ``key`` (on ``seeds``, with
    ``overrides`` on top of the sweep's), each activation's best value by final validation loss, and
    ``extend``: a best value at the edge of the grid adds the next value on that side (at most
    ``MAX_EXTENSIONS`` times)."""

    key: str
    values: list[str]
    seeds: list[int] = field(default_factory=lambda: [0])
    overrides: list[str] = field(default_factory=list)
    extend: bool = False

    MAX_EXTENSIONS = 2

    @classmethod
    def parse(cls, text: str, seeds: list[int] | None = None, overrides: list[str] | None = None,
              extend: bool = False) -> Tune:
        """From ``--tune KEY=v1,v2,...``."""
        key, sep, values = text.partition("=")
        values = split_top_level(values)
        if not sep or not key.strip() or len(values) < 2:
            raise ValueError(f"--tune must be KEY=v1,v2,... with at least two values, e.g. train.lr=5e-4,1e-3,2e-3; "
                             f"got {text!r}")
        key = key.strip()
        if key in RESERVED or key.startswith("act."):
            raise ValueError(f"--tune cannot tune {key} (the sweep sets it, or it is an activation option: "
                             "compare those with --act)")
        if len(set(values)) != len(values):
            raise ValueError(f"--tune lists a value twice: {text!r}")
        for item in overrides or []:
            if "=" not in item:
                raise ValueError(f"--tune-override {item!r} must be key=value")
            if len(split_top_level(item.split("=", 1)[1])) > 1:
                raise ValueError(f"--tune-override {item!r} must have one value (the grid is --tune's)")
        return cls(key, values, list(seeds if seeds is not None else [0]), list(overrides or []), extend)


def _merge(kind: str, base: list[str], extra: list[str]) -> list[str]:
    """``base`` overrides with those of ``extra`` replacing any of the same key."""
    from orthoact.train.config import canonical_key

    sections = _sections(kind)
    keys = {canonical_key(sections, item.split("=", 1)[0]) for item in extra}
    return [o for o in base if canonical_key(sections, o.split("=", 1)[0]) not in keys] + list(extra)


def _check_tune_key(kind: str, tune: Tune, overrides: list[str]) -> None:
    from orthoact.train.config import canonical_key

    sections = _sections(kind)
    key = canonical_key(sections, tune.key)
    for item in [*overrides, *tune.overrides]:
        if canonical_key(sections, item.split("=", 1)[0]) == key:
            raise ValueError(f"--tune sets {tune.key} for every run; remove the override {item!r}")


def plan_tune(preset: str, kind: str, acts: list[str], tune: Tune, overrides: list[str], out: Path,
              seen: dict | None = None, values: dict | None = None) -> list[Run]:
    """Stage 1: every cell x tuned value x tune seed x activation, in ``OUT/tune/<cell>/<key=value>/``.
    ``values`` gives a cell's activation its own value list (``{(cell, act): [values]}``, grown by
    extensions); the others take ``tune.values``."""
    _check_names(acts, tune.seeds, "--tune-seeds")
    _check_tune_key(kind, tune, overrides)
    seen = {} if seen is None else seen
    runs = []
    for cell, cell_overrides, act_options in cells(overrides):
        merged = _merge(kind, cell_overrides, tune.overrides)
        for act in acts:
            full_act = with_options(act, act_options)
            for value in (values or {}).get((cell, full_act), tune.values):
                for seed in tune.seeds:
                    setting = f"{tune.key}={value}"
                    folder = out / "tune" / slug(cell) / slug(setting) / f"{slug(act)}-s{seed}"
                    runs.append(_new_run(cell, merged + [setting], full_act, seed, folder, seen, stage="tune",
                                         value=value))
    # the same order as plan(): value, then seed, then activation
    return sorted(runs, key=lambda r: (r.cell, _value_rank(tune, r.value), r.seed))


def _value_rank(tune: Tune, value: str) -> float:
    return tune.values.index(value) if value in tune.values else len(tune.values) + (as_number(value) or 0.0)


def next_value(values: list[str], side: str) -> str | None:
    """The value beyond the ``"low"`` or ``"high"`` edge of a numeric grid: the same ratio as the last
    step when the values are positive (5e-4, 1e-3, 2e-3 -> 4e-3), else the same difference; ``None``
    for a grid that is not numeric."""
    ordered = sorted_values(values)
    numbers = [as_number(v) for v in ordered]
    if None in numbers or len(numbers) < 2:
        return None
    edge, inner = (numbers[-1], numbers[-2]) if side == "high" else (numbers[0], numbers[1])
    beyond = edge * edge / inner if edge > 0 and inner > 0 else 2 * edge - inner
    return f"{beyond:.6g}"


def plan_final(preset: str, kind: str, acts: list[str], seeds: list[int], overrides: list[str], out: Path,
               tune: Tune, chosen: dict, seen: dict) -> list[Run]:
    """Stage 2: every seed of each activation at its own best value, ``OUT/<cell>/<key=value>/``."""
    runs = []
    for cell, cell_overrides, act_options in cells(overrides):
        for seed in seeds:
            for act in acts:
                full_act = with_options(act, act_options)
                best = chosen.get(cell, {}).get(full_act)
                if best is None:
                    continue
                setting = f"{tune.key}={best}"
                runs.append(_new_run(cell, cell_overrides + [setting], full_act, seed,
                                     out / slug(cell) / slug(setting) / f"{slug(act)}-s{seed}", seen, value=best))
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
    write_json(run.folder / DONE_FILE, result)


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


@dataclass
class SweepOutcome:
    """What a sweep left: its folder, the runs that failed and, in a tuned sweep, the activations for
    which no value could be chosen (every stage-1 run of theirs failed)."""

    out: Path
    failed: list[str] = field(default_factory=list)
    untuned: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failed and not self.untuned


def _write_plan(out: Path, preset: str, kind: str, acts: list[str], seeds: list[int], overrides: list[str],
                runs: list[Run], tune: Tune | None) -> None:
    entries = []
    for r in runs:
        entry = {"cell": r.cell, "act": r.act, "seed": r.seed, "folder": str(r.folder.relative_to(out))}
        if tune is not None:
            entry |= {"stage": r.stage, "value": r.value}
        entries.append(entry)
    data = {"preset": preset, "kind": kind, "acts": acts, "seeds": seeds, "overrides": overrides, "runs": entries}
    if tune is not None:
        data["tune"] = {"key": tune.key, "values": tune.values, "seeds": tune.seeds, "overrides": tune.overrides,
                        "extend": tune.extend}
    write_json(out / "sweep.json", data)


def sweep(preset: str, acts: list[str], seeds: list[int], overrides: list[str], out: str | Path | None = None,
          jobs: int = 1, log=print, tune: Tune | None = None) -> SweepOutcome:
    """Plan, run and summarize a sweep (with ``tune``: stage 1, the choice of each activation's value,
    then stage 2); returns the folder and what failed."""
    from orthoact.analysis.sweeps import summarize, tune_grid

    kind = _kind(preset)
    check_dataset(kind, preset, overrides)
    out = Path(out or f"runs/sweep-{Path(preset).stem}")
    out.mkdir(parents=True, exist_ok=True)
    seen: dict = {}
    runs: list[Run] = []
    outcome = SweepOutcome(out)
    if tune is not None:
        values: dict = {}
        stage1 = plan_tune(preset, kind, acts, tune, overrides, out, seen)
        # the sweep's own runs are validated (names, reserved keys) before stage 1 spends any time
        plan(preset, kind, acts, seeds, overrides, out, {})
        for round_ in range(Tune.MAX_EXTENSIONS + 1):
            _write_plan(out, preset, kind, acts, seeds, overrides, stage1, tune)
            log(f"sweep: stage 1, tuning {tune.key}" + (f" (extension {round_})" if round_ else ""))
            execute(kind, preset, stage1, jobs, log)
            grid = tune_grid(_loaded(out))
            if not tune.extend or round_ == Tune.MAX_EXTENSIONS:
                break
            grown = False
            for cell, by_act in grid.items():
                for act, entry in by_act.items():
                    beyond = next_value(entry["values"], entry["edge"]) if entry["edge"] else None
                    if beyond is not None and beyond not in entry["values"]:
                        values[(cell, act)] = entry["values"] + [beyond]
                        log(f"sweep: {act} is best at the {entry['edge']} edge ({tune.key}={entry['best']}) in {cell}; "
                            f"adding {tune.key}={beyond}")
                        grown = True
            if not grown:
                break
            stage1 = plan_tune(preset, kind, acts, tune, overrides, out, seen, values)
        chosen = {cell: {act: e["best"] for act, e in by_act.items() if e["best"] is not None} for cell, by_act in grid.items()}
        outcome.untuned = [f"{cell}/{act}" for cell, by_act in grid.items() for act, e in by_act.items() if e["best"] is None]
        for cell, by_act in chosen.items():
            log(f"sweep: chosen {tune.key} in {cell}: " + ", ".join(f"{a} {v}" for a, v in by_act.items()))
        runs = stage1 + plan_final(preset, kind, acts, seeds, overrides, out, tune, chosen, seen)
        log("sweep: stage 2, every seed at each activation's chosen value")
    else:
        runs = plan(preset, kind, acts, seeds, overrides, out, seen)
    _write_plan(out, preset, kind, acts, seeds, overrides, runs, tune)
    execute(kind, preset, [r for r in runs if r.stage == "final"], jobs, log)
    summarize(out, log=log)
    failed = {r.folder: r.name for r in runs if not (r.folder / DONE_FILE).is_file()}
    outcome.failed = list(failed.values())
    if outcome.failed:
        log("failed runs (the summary leaves them out): " + ", ".join(outcome.failed))
    if outcome.untuned:
        log("no value could be chosen (every stage-1 run failed) for: " + ", ".join(outcome.untuned))
    return outcome


def _loaded(out: Path) -> dict:
    from orthoact.analysis.sweeps import load_sweep

    return load_sweep(out)


def _sections(kind: str) -> dict:
    if kind == "lm":
        from orthoact.train.lm import SECTIONS
    else:
        from orthoact.train.image import SECTIONS
    return SECTIONS


def check_dataset(kind: str, preset: str, overrides: list[str]) -> None:
    """Raise ``FileNotFoundError`` (naming the ``orthoact data`` command) when the sweep's dataset is
    not prepared, before any run starts."""
    fixed = [o for o in _grid(overrides)[0] if not o.startswith("act.")]
    if kind == "lm":
        from orthoact.train.lm import resolve_config
        from orthoact.train.lm_data import resolve_dataset

        resolve_dataset(resolve_config(preset, fixed)["data"].dataset)
        return
    from orthoact.train.image import resolve_config
    from orthoact.train.image_data import fashion_mnist_dir

    dataset = resolve_config(preset, fixed)["data"].dataset
    if dataset == "fashion-mnist":
        fashion_mnist_dir()
    elif not all((Path(dataset) / split).is_dir() for split in ("train", "val")):
        raise FileNotFoundError(f"image dataset {dataset!r} needs the folders train/<class>/ and val/<class>/")


def _kind(preset: str) -> str:
    for kind in ("lm", "image"):
        try:
            load_preset(preset, kind)
            return kind
        except ValueError as error:
            if "unknown preset" in str(error):
                raise
    raise ValueError(f"preset {preset!r} is neither a language-model nor an image preset")
