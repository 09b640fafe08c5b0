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


def test_plan_tune_values_sharing_and_merge(tmp_path):
    from orthoact.sweep import Tune, next_value, plan_tune

    tune = Tune.parse("train.lr=5e-4,1e-3", [0], ["train.max_steps=10"])
    runs = plan_tune("shakespeare-char", "lm", ["gelu", "hermite:3"], tune, ["train.max_steps=50", "train.act_lr_mult=1,10"],
                     tmp_path)
    assert len(runs) == 2 * 2 * 2  # cells x values x activations (one tune seed)
    assert {r.stage for r in runs} == {"tune"} and {r.value for r in runs} == {"5e-4", "1e-3"}
    first = runs[0]
    assert first.folder == tmp_path / "tune" / "train.act_lr_mult=1" / "train.lr=5e-4" / "gelu-s0"
    # the tune override replaces the sweep's value of the same key; the tuned key comes last
    assert first.cell_overrides == ["train.act_lr_mult=1", "train.max_steps=10", "train.lr=5e-4"]
    # gelu has no activation parameters: one run per value, shared by both multiplier cells
    gelu = [r for r in runs if r.act == "gelu"]
    assert len({r.folder for r in gelu}) == 2
    # a value list of its own for one activation (an extension)
    more = plan_tune("shakespeare-char", "lm", ["gelu", "hermite:3"], tune, [], tmp_path,
                     values={("base", "hermite:3"): ["5e-4", "1e-3", "0.002"]})
    assert sorted(r.value for r in more if r.act == "hermite:3") == ["0.002", "1e-3", "5e-4"]
    assert len([r for r in more if r.act == "gelu"]) == 2
    assert next_value(["5e-4", "1e-3", "2e-3"], "high") == "0.004"
    assert next_value(["5e-4", "1e-3", "2e-3"], "low") == "0.00025"
    assert next_value(["0", "1"], "high") == "2" and next_value(["a", "b"], "high") is None
    for bad, message in [("train.lr", "at least two values"), ("train.lr=1e-3", "at least two values"),
                         ("train.seed=1,2", "cannot tune train.seed"), ("train.lr=1,1", "lists a value twice")]:
        with pytest.raises(ValueError, match=message):
            Tune.parse(bad)
    with pytest.raises(ValueError, match=re.escape("--tune sets lr for every run; remove the override 'train.lr=1e-3'")):
        plan_tune("shakespeare-char", "lm", ["gelu"], Tune.parse("lr=1e-3,2e-3"), ["train.lr=1e-3"], tmp_path)


def test_tune_grid_best_and_edges():
    from orthoact.analysis.sweeps import tune_grid

    def run(act, value, loss, seed=0):
        return {"stage": "tune", "cell": "base", "act": act, "value": value, "seed": seed, "done": loss is not None,
                "final": {} if loss is None else {"val_loss": loss}}

    data = {"plan": {"tune": {"key": "train.lr"}}, "runs": [
        run("a", "1e-3", 2.0), run("a", "2e-3", 1.5), run("a", "4e-3", 1.7),             # interior optimum
        run("b", "1e-3", 2.0), run("b", "2e-3", 1.9), run("b", "4e-3", 1.8),             # best at the high edge
        run("c", "1e-3", 1.0), run("c", "1e-3", 3.0, seed=1), run("c", "4e-3", 1.9),     # mean over seeds: 2.0 vs 1.9
        run("d", "1e-3", None), run("d", "4e-3", float("nan")),                          # failed and diverged
        {"stage": "final", "cell": "base", "act": "a", "value": "2e-3", "seed": 0, "done": True, "final": {"val_loss": 0.1}},
    ]}
    grid = tune_grid(data)["base"]
    assert (grid["a"]["best"], grid["a"]["edge"]) == ("2e-3", None)
    assert (grid["b"]["best"], grid["b"]["edge"]) == ("4e-3", "high")
    assert grid["c"]["losses"] == {"1e-3": 2.0, "4e-3": 1.9} and grid["c"]["best"] == "4e-3"
    assert grid["d"]["best"] is None and grid["d"]["values"] == ["1e-3", "4e-3"]


def test_tuned_sweep_extends_chooses_and_compares(dataset, tmp_path, capsys):
    from orthoact.cli import main

    out = tmp_path / "tuned"
    # tiny runs: a larger learning rate is better here, so the best sits at the high edge and is extended
    argv = ["sweep", "--preset", "shakespeare-char", "--act", "gelu,tropical:3", "--seeds", "0,1", "--out", str(out),
            "--jobs", "2", "--tune", "train.lr=1e-5,1e-4", "--tune-override", "train.max_steps=3", "--tune-extend",
            *tiny(dataset), "train.min_lr=1e-6"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    plan_data = json.loads((out / "sweep.json").read_text())
    assert plan_data["tune"] == {"key": "train.lr", "values": ["1e-5", "1e-4"], "seeds": [0],
                                 "overrides": ["train.max_steps=3"], "extend": True}
    stage1 = [r for r in plan_data["runs"] if r["stage"] == "tune"]
    final = [r for r in plan_data["runs"] if r["stage"] == "final"]
    assert {r["value"] for r in stage1} >= {"1e-5", "1e-4", "0.001"}  # extended at least once
    assert len(final) == 2 * 2 and len({r["value"] for r in final if r["act"] == "gelu"}) == 1
    data = json.loads((out / "summary.json").read_text())
    for act in ("gelu", "tropical:3"):
        entry = data["tune"]["base"][act]
        assert entry["best"] == next(r["value"] for r in final if r["act"] == act)
        assert len(entry["values"]) >= 3
        # stage 2 ran every seed at that value, with the sweep's overrides (4 steps), not stage 1's (3)
        for seed in (0, 1):
            run = next(r for r in final if r["act"] == act and r["seed"] == seed)
            rows = [json.loads(line) for line in (out / run["folder"] / "metrics.jsonl").read_text().splitlines()]
            assert max(r["step"] for r in rows) == 4
            config = json.loads((out / run["folder"] / "config.json").read_text())
            assert config["train"]["lr"] == float(entry["best"])
    summary = (out / "summary.md").read_text()
    assert "## Stage 1: tuning `train.lr`" in summary and "--tune train.lr=1e-5,1e-4" in summary
    assert "## Stage 2: base, each activation at its chosen train.lr" in summary
    assert "| activation | tuned train.lr | seeds |" in summary
    assert (out / "tune_base.png").exists() and (out / "curves_base.png").exists()
    assert "chosen train.lr in base" in printed or "Stage 2" in printed
    # resuming the whole tuned sweep runs nothing new
    assert main(argv) == 0
    assert "0 to run" in capsys.readouterr().out


def test_sweep_fails_loudly(dataset, tmp_path, capsys, monkeypatch):
    from orthoact.cli import main

    # a dataset that is not prepared: one message naming the command, before any run starts
    monkeypatch.setenv("ORTHOACT_DATA_DIR", str(tmp_path / "empty"))
    assert main(["sweep", "--preset", "shakespeare-char", "--act", "gelu", "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert "dataset 'shakespeare-char' is not prepared" in err and "orthoact data shakespeare" in err
    assert not (tmp_path / "x").exists()
    # every run failing: the summary is written and the exit status is non-zero
    assert main(["sweep", "--preset", "shakespeare-char", "--act", "hermite:3(groups=7)", "--seeds", "0",
                 "--out", str(tmp_path / "y"), *tiny(dataset)]) == 1
    assert "1 run(s) failed" in capsys.readouterr().err
    assert (tmp_path / "y" / "summary.md").exists()
    assert main(["sweep", "--preset", "shakespeare-char", "--act", "gelu", "--tune-extend"]) == 2
