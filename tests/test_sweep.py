"""``orthoact sweep``: runs every (cell, activation, seed), resumes, survives a failed run, summarizes
with error bars."""

import json
import re

import numpy as np
import pytest

from orthoact.analysis.sweeps import mean_interval, t975
from orthoact.sweep import command, plan, split_top_level, sweep
from orthoact.train.lm_data import prepare_text

TEXT = "".join(np.random.default_rng(1).choice(["the cat sat. ", "a dog ran! ", "to be or not? "], 300))


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return prepare_text(TEXT, tmp_path_factory.mktemp("data") / "tiny", "char", val_fraction=0.2)


def tiny(dataset) -> list[str]:
    return [f"data.dataset={dataset}", "model.n_layer=1", "model.n_head=2", "model.n_embd=16", "model.block_size=8",
            "train.batch_size=4", "train.eval_iters=1", "train.warmup_steps=1", "train.max_steps=4",
            "train.eval_interval=2", "train.log_interval=1"]


def test_split_and_plan(tmp_path):
    assert split_top_level("gelu,hermite:3(init=gelu,groups=2), tropical:5") == ["gelu", "hermite:3(init=gelu,groups=2)", "tropical:5"]
    runs = plan("shakespeare-char", "lm", ["gelu", "hermite:3"], [0, 1],
                ["train.lr=1e-3", "train.act_lr_mult=1,10", "act.init=paper,gelu"], tmp_path)
    assert len(runs) == 2 * 2 * 2 * 2
    cells = list(dict.fromkeys(r.cell for r in runs))
    assert cells == ["train.act_lr_mult=1,act.init=paper", "train.act_lr_mult=1,act.init=gelu",
                     "train.act_lr_mult=10,act.init=paper", "train.act_lr_mult=10,act.init=gelu"]
    acts = {r.act for r in runs}
    assert acts == {"gelu", "hermite:3(init=paper)", "hermite:3(init=gelu)"}  # a baseline takes no family options
    assert all("train.lr=1e-3" in r.cell_overrides for r in runs)
    # the gelu baseline (no activation parameters) is one run per seed, shared by every cell
    gelu = [r for r in runs if r.act == "gelu"]
    assert len(gelu) == 8 and len({r.folder for r in gelu}) == 2
    with pytest.raises(ValueError, match="unknown activation 'swishy'"):
        plan("shakespeare-char", "lm", ["swishy"], [0], [], tmp_path)
    for reserved in ("train.seed=3", "seed=5,6", "out_dir=/tmp/x", "act=gelu", "train.resume=true"):
        with pytest.raises(ValueError, match=re.escape(f"the sweep sets {reserved.split('=')[0]} itself")):
            plan("shakespeare-char", "lm", ["gelu"], [0], [reserved], tmp_path)
    # an option goes only to the activations that take it (the others are one run, not a crash)
    runs = plan("shakespeare-char", "lm", ["hermite:3", "rational:5/4"], [0], ["act.version=A,B"], tmp_path)
    assert [r.act for r in runs] == ["hermite:3", "rational:5/4(version=A)", "hermite:3", "rational:5/4(version=B)"]
    assert runs[0].folder == runs[2].folder


def test_t_interval():
    assert t975(2) == pytest.approx(4.303)
    m, half = mean_interval([1.0, 2.0, 3.0])
    assert m == 2.0 and half == pytest.approx(4.303 * 1.0 / 3**0.5)
    assert mean_interval([1.0]) == (1.0, None)


def test_sweep_runs_resumes_and_summarizes(dataset, tmp_path):
    out = tmp_path / "sweep"
    logs = []
    sweep("shakespeare-char", ["gelu", "tropical:3", "hermite:3(groups=7)"], [0, 1],
          tiny(dataset) + ["train.act_lr_mult=1,10"], out, jobs=2, log=logs.append)
    text = "\n".join(logs)
    # a run that fails (7 groups do not divide 64 channels) is named; the others finish
    assert re.search(r"failed train.act_lr_mult=1/hermite-3-groups=7-s0 .*groups=7 must divide", text, re.S), text
    assert "failed runs (the summary leaves them out)" in text
    assert len(list(out.glob("*/*/result.json"))) == 2 * 2 + 2  # gelu runs once per seed for both cells
    assert "[10/10]" in text
    summary = (out / "summary.md").read_text()
    assert "## train.act_lr_mult=1" in summary and "## train.act_lr_mult=10" in summary
    row = next(line for line in summary.splitlines() if line.startswith("| `tropical:3`"))
    assert re.search(r"\| 2 \| \d\.\d{4} ± \d\.\d{4} \|", row), row  # mean +- std over 2 seeds
    assert re.search(r"[+-]\d\.\d{4} ± \d\.\d{4}", row), row  # paired difference with its interval
    data = json.loads((out / "summary.json").read_text())
    assert data["cells"]["train.act_lr_mult=1"][0]["act"] == "gelu"
    assert (out / "curves_train.act_lr_mult=1.png").exists() and (out / "activations_train.act_lr_mult=1.png").exists()
    # resume: finished runs are skipped; an interrupted one (checkpoint, no result) continues
    interrupted = out / "train.act_lr_mult=10" / "tropical-3-s1"
    (interrupted / "result.json").unlink()
    runs = plan("shakespeare-char", "lm", ["tropical:3"], [1], tiny(dataset) + ["train.act_lr_mult=1,10"], out)
    assert runs[1].folder == interrupted and "train.resume=true" in command("lm", "shakespeare-char", runs[1], 1)
    logs.clear()
    sweep("shakespeare-char", ["gelu", "tropical:3"], [0, 1], tiny(dataset) + ["train.act_lr_mult=1,10"], out, log=logs.append)
    assert "6 runs, 5 already finished, 1 to run" in logs[0]
    rows = [json.loads(line) for line in (interrupted / "metrics.jsonl").read_text().splitlines()]
    steps = [r["step"] for r in rows if "train_loss" in r]
    assert (interrupted / "result.json").exists() and steps == [1, 2, 3, 4]  # resumed, nothing logged twice
    from orthoact.cli import main

    assert main(["sweep", "--summarize", str(out)]) == 0
    # the same folder with other settings is refused, not mixed into the summary
    with pytest.raises(ValueError, match="holds a finished run with other settings"):
        sweep("shakespeare-char", ["gelu"], [0], tiny(dataset) + ["train.max_steps=6", "train.act_lr_mult=1,10"], out,
              log=logs.append)
    # the demo's reference: each activation's paired differences to GELU, read back by the demo
    from orthoact import demo

    written = demo.write_reference(out, "train.act_lr_mult=10", tmp_path / "reference.json")
    data = json.loads((out / "summary.json").read_text())
    row = next(r for r in data["cells"]["train.act_lr_mult=10"] if r["act"] == "tropical:3")
    assert written["steps"] == 4 and written["acts"]["tropical:3"]["values"] == row["paired"]["values"]
    assert len(row["paired"]["values"]) == 2 and "gelu" not in written["acts"]
    assert "--seeds 0,1" in written["source"] and "cell train.act_lr_mult=10" in written["source"]
    assert json.loads((tmp_path / "reference.json").read_text()) == written
