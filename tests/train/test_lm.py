"""The language-model recipe: training, exact resume, DDP equivalence, data preparation, bad input."""

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch

import orthoact
from conftest import ACT_NAMES, assert_torchrun_matches
from orthoact.models import GPT, GPTConfig
from orthoact.train import checkpoint as ckpt
from orthoact.train.lm import evaluate_run, sample_run, train_lm
from orthoact.train.lm_data import decoder, prepare_text, read_documents, tokenize_files

TEXT = "".join(
    np.random.default_rng(0).choice(["the cat sat on the mat. ", "a dog ran in the park! ", "to be or not to be? "], 400)
)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return prepare_text(TEXT, tmp_path_factory.mktemp("data") / "tiny-char", "char", val_fraction=0.2)


def tiny(dataset, out, *extra):
    return [
        f"data.dataset={dataset}", f"train.out_dir={out}", "model.n_layer=1", "model.n_head=2", "model.n_embd=32",
        "model.block_size=16", "train.batch_size=8", "train.eval_iters=2", "train.warmup_steps=5", "train.lr=3e-3",
        "train.progress=false", "train.threads=1", "train.log_interval=1", *extra,
    ]


def losses(run: Path) -> list[float]:
    return [r["train_loss"] for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines()) if "train_loss" in r]


@pytest.mark.parametrize("act", ["gelu", *ACT_NAMES])
def test_tiny_gpt_learns(dataset, tmp_path, act):
    train_lm("shakespeare-char", tiny(dataset, tmp_path, f"act={act}", "train.max_steps=30", "train.eval_interval=30"))
    trace = losses(tmp_path)
    assert len(trace) == 30
    assert np.mean(trace[-5:]) < 0.9 * np.mean(trace[:5]), trace
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["model"]["activation"] == act and config["model"]["vocab_size"] == len(set(TEXT))
    snapshots = tmp_path / "activations.jsonl"
    assert (not snapshots.exists()) if act == "gelu" else len(snapshots.read_text().splitlines()) == 2


def test_resume_equals_uninterrupted(dataset, tmp_path):
    args = ["act=hermite:3", "train.max_steps=16", "train.eval_interval=4", "model.dropout=0.1"]
    train_lm("shakespeare-char", tiny(dataset, tmp_path / "full", *args))
    train_lm("shakespeare-char", tiny(dataset, tmp_path / "split", *args, "train.stop_at=6"))
    assert len(losses(tmp_path / "split")) == 6
    train_lm("shakespeare-char", tiny(dataset, tmp_path / "split", *args, "train.resume=true"))
    assert losses(tmp_path / "split") == losses(tmp_path / "full")
    a = ckpt.load(tmp_path / "full" / "ckpt.pt")["model"]
    b = ckpt.load(tmp_path / "split" / "ckpt.pt")["model"]
    for name in a:
        assert torch.equal(a[name], b[name]), name


@pytest.mark.slow
def test_torchrun_two_processes_equal_one(dataset, tmp_path):
    common = ["act=hermite:3", "train.max_steps=6", "train.eval_interval=6", "train.grad_accum=2"]
    train_lm("shakespeare-char", tiny(dataset, tmp_path / "single", *common, "train.batch_size=8"))
    assert_torchrun_matches("lm", "shakespeare-char", tmp_path / "single", tmp_path / "ddp",
                            [*tiny(dataset, tmp_path / "ddp", *common), "train.batch_size=4"], losses)


def test_eval_and_sample(dataset, tmp_path):
    train_lm("shakespeare-char", tiny(dataset, tmp_path, "train.max_steps=4", "train.eval_interval=4"))
    metrics = evaluate_run(tmp_path, eval_iters=2)
    assert metrics["step"] == 4 and metrics["val_loss"] > 0
    text = sample_run(tmp_path, prompt="the ", tokens=20)
    assert text.startswith("the ") and len(text) == 24
    with pytest.raises(ValueError, match=re.escape("characters ['Z'] are not in the vocabulary")):
        sample_run(tmp_path, prompt="Z")
    from orthoact.train.image import evaluate_run as evaluate_image_run

    with pytest.raises(ValueError, match="is not an image run \\(kind='lm'\\)"):
        evaluate_image_run(tmp_path)


def test_char_and_bpe_round_trip(tmp_path):
    for kind in ("char", "bpe"):
        folder = prepare_text(TEXT, tmp_path / kind, kind, vocab_size=300, val_fraction=0.1)
        meta = json.loads((folder / "meta.json").read_text())
        decode, encode = decoder(meta, folder)
        tokens = np.concatenate([np.fromfile(folder / "train.bin", dtype=np.uint16), np.fromfile(folder / "val.bin", dtype=np.uint16)])
        assert decode(tokens.tolist()) == TEXT
        assert decode(encode("to be or not")) == "to be or not"


def test_gpt2_tokenize_files_round_trip(tmp_path):
    pytest.importorskip("tiktoken")
    (tmp_path / "a.txt").write_text("Hello world. This is a test.")
    (tmp_path / "b.jsonl").write_text(json.dumps({"text": "Second document"}) + "\n" + json.dumps({"text": "third one"}) + "\n")
    meta = tokenize_files([tmp_path / "a.txt", tmp_path / "b.jsonl"], tmp_path / "out", val_fraction=0.2, progress=False)
    assert meta["vocab_size"] == 50257
    decode, _ = decoder(meta, tmp_path / "out")
    tokens = np.concatenate([np.fromfile(tmp_path / "out" / f, dtype=np.uint16) for f in ("train.bin", "val.bin")])
    assert decode(tokens.tolist()) == "Hello world. This is a test.<|endoftext|>Second document<|endoftext|>third one<|endoftext|>"
    (tmp_path / "bad.jsonl").write_text('{"body": 1}\n')
    with pytest.raises(ValueError, match="bad.jsonl:1 is not a JSON object with a 'text' field"):
        list(read_documents([tmp_path / "bad.jsonl"]))


def test_gpt_model():
    torch.manual_seed(0)
    model = GPT(GPTConfig(block_size=8, vocab_size=11, n_layer=2, n_head=2, n_embd=16, activation="tropical:4"))
    assert model.lm_head.weight is model.transformer.wte.weight
    assert sum(isinstance(m, orthoact.Tropical) for m in model.modules()) == 2
    out = model.generate(torch.zeros(1, 3, dtype=torch.long), 12, generator=torch.Generator().manual_seed(0))
    assert out.shape == (1, 15)
    with pytest.raises(ValueError, match="sequence length 9 exceeds block_size=8"):
        model(torch.zeros(1, 9, dtype=torch.long))
    with pytest.raises(ValueError, match="GPTConfig.n_embd=10 must be divisible by n_head=3"):
        GPTConfig(n_embd=10, n_head=3)
    with pytest.raises(TypeError, match="not a module instance"):
        GPT(GPTConfig(vocab_size=5, n_layer=1, n_head=1, n_embd=4, activation=orthoact.Hermite()))
    GPT(GPTConfig(vocab_size=5, n_layer=1, n_head=1, n_embd=4, block_size=4, activation=lambda: orthoact.Hermite(5)))


@pytest.mark.parametrize(
    "overrides, exc, message",
    [
        (["lrr=1"], ValueError, "unknown config key 'lrr'; known: model.block_size"),
        (["train.lr=fast"], ValueError, "train.lr expects a float, got 'fast'"),
        (["train.compile=maybe"], ValueError, "train.compile expects a bool (true/false), got 'maybe'"),
        (["act=swish"], ValueError, "unknown activation 'swish'"),
        (["train.dtype=float8"], ValueError, "train.dtype must be 'float32', 'bfloat16' or 'float16'"),
        (["data.dataset=nowhere"], FileNotFoundError, "run: orthoact data tokenize --tokenizer gpt2"),
        (["model.block_size=100000"], ValueError, "block_size=100000 is larger than the data"),
        (["train.resume=true"], FileNotFoundError, "no checkpoint to resume from at"),
        (["noequals"], ValueError, "override 'noequals' must be key=value"),
        (["train.lr=inf"], ValueError, "train.lr must be a finite number > 0, got inf"),
        (["train.min_lr=nan"], ValueError, "train.min_lr must be a finite number >= 0 and <= 0.003, got nan"),
        (["train.warmup_steps=-1"], ValueError, "train.warmup_steps must be an int >= 0, got -1"),
        (["train.stop_at=-3"], ValueError, "train.stop_at must be an int >= 0, got -3"),
        (["train.snapshot_interval=-1"], ValueError, "train.snapshot_interval must be an int >= 0, got -1"),
        (["train.act_lr_mult=-1"], ValueError, "train.act_lr_mult must be a finite number >= 0, got -1.0"),
        (["train.weight_decay=-1"], ValueError, "train.weight_decay must be a finite number >= 0, got -1.0"),
        (["train.ema_decay=2"], ValueError, "train.ema_decay must be a finite number >= 0 and < 1, got 2.0"),
        (["train.grad_clip=nan"], ValueError, "train.grad_clip must be a finite number >= 0, got nan"),
        (["train.beta2=1"], ValueError, "train.beta2 must be a finite number >= 0 and < 1, got 1.0"),
        (["train.threads=-2"], ValueError, "train.threads must be an int >= 0, got -2"),
        (["train.device=tpu"], ValueError, "train.device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got 'tpu'"),
        (["train.resume=true", "train.overwrite=true"], ValueError, "contradict each other"),
    ],
)
def test_bad_config(dataset, tmp_path, overrides, exc, message):
    base = tiny(dataset, tmp_path, "train.max_steps=1", "train.eval_interval=1")
    if any(o.startswith("data.dataset") for o in overrides):
        base = [b for b in base if not b.startswith("data.dataset")]
    with pytest.raises(exc, match=re.escape(message)):
        train_lm("shakespeare-char", base + overrides)


def test_unknown_preset():
    with pytest.raises(ValueError, match=re.escape("unknown preset 'gpt5'; available: owt-gpt2-124m, shakespeare-char")):
        train_lm("gpt5")


def test_corrupt_checkpoint_and_atomic_save(dataset, tmp_path):
    train_lm("shakespeare-char", tiny(dataset, tmp_path, "train.max_steps=2", "train.eval_interval=2"))
    path = tmp_path / "ckpt.pt"
    good = path.read_bytes()
    path.write_bytes(good[: len(good) // 2])
    with pytest.raises(ValueError, match="is corrupt or unreadable"):
        train_lm("shakespeare-char", tiny(dataset, tmp_path, "train.max_steps=4", "train.eval_interval=2", "train.resume=true"))
    path.write_bytes(good)

    class Boom:
        def __reduce__(self):
            raise RuntimeError("crash while writing")

    with pytest.raises(RuntimeError, match="crash while writing"):
        ckpt.save_atomic({"model": {}, "bad": Boom()}, path)
    assert path.read_bytes() == good  # the previous checkpoint is intact
    assert not list(tmp_path.glob(".ckpt.pt.*"))  # and no temporary file is left


def test_cli_train_and_errors(dataset, tmp_path, capsys):
    from orthoact.cli import main

    args = tiny(dataset, tmp_path, "train.max_steps=2", "train.eval_interval=2")
    assert main(["train", "lm", "--preset", "shakespeare-char", *args]) == 0
    assert (tmp_path / "ckpt.pt").exists()
    assert main(["train", "lm", "lrr=3"]) == 2
    assert "unknown config key 'lrr'" in capsys.readouterr().err
    assert main(["sample", str(tmp_path), "--prompt", "a", "--tokens", "5"]) == 0


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without CUDA")
def test_cuda_without_a_gpu_is_one_line_in_the_cli(dataset, tmp_path, capsys):
    from orthoact.cli import main

    for bad, message in (("train.device=cuda", "train.device='cuda' but CUDA is not available on this machine"),
                         ("train.threads=-2", "train.threads must be an int >= 0, got -2")):
        assert main(["train", "lm", *tiny(dataset, tmp_path, "train.max_steps=1"), bad]) == 2
        err = capsys.readouterr().err
        assert err.strip() == f"orthoact: error: {message}" or message in err and "Traceback" not in err, err


def test_existing_run_is_never_replaced_silently(dataset, tmp_path):
    """Regression: a new run in an existing out_dir deleted the previous run's metrics and checkpoint."""
    args = tiny(dataset, tmp_path, "train.max_steps=2", "train.eval_interval=2")
    train_lm("shakespeare-char", args)
    before = (tmp_path / "ckpt.pt").read_bytes()
    with pytest.raises(FileExistsError, match=re.escape(f"train.out_dir={str(tmp_path)!r} already holds a run (ckpt.pt, "
                                                        "metrics.jsonl, config.json); continue it with "
                                                        "train.resume=true, replace it with train.overwrite=true")):
        train_lm("shakespeare-char", args + ["act=hermite:3"])
    assert (tmp_path / "ckpt.pt").read_bytes() == before
    train_lm("shakespeare-char", args + ["act=hermite:3", "train.overwrite=true", "train.seed=3"])
    assert json.loads((tmp_path / "config.json").read_text())["model"]["activation"] == "hermite:3"
    assert len(losses(tmp_path)) == 2  # the old rows are gone, not appended to


def test_default_run_folder_is_named_after_preset_and_activation(monkeypatch, tmp_path):
    from orthoact.train.lm import resolve_config

    assert resolve_config("shakespeare-char", ["act=hermite:3"])["train"].out_dir == "runs/shakespeare-char-hermite-3"
    assert resolve_config("shakespeare-char", ["act=rational:5/4"])["train"].out_dir == "runs/shakespeare-char-rational-5-4"
    assert resolve_config("shakespeare-char", ["train.out_dir=mine"])["train"].out_dir == "mine"


def test_resume_keeps_one_snapshot_per_step_and_loads_rng_on_cpu(dataset, tmp_path, monkeypatch):
    """Regression: resuming duplicated activation snapshots; checkpoints were loaded onto the
    training device, where RNG states must not go."""
    args = ["act=tropical:4", "train.max_steps=12", "train.eval_interval=4", "train.snapshot_interval=2"]
    train_lm("shakespeare-char", tiny(dataset, tmp_path / "full", *args))
    train_lm("shakespeare-char", tiny(dataset, tmp_path / "split", *args, "train.stop_at=5"))
    from orthoact.train import trainer as trainer_module

    seen = []
    real_load = trainer_module.ckpt.load
    def load(path, map_location="cpu"):
        seen.append(map_location)
        return real_load(path, map_location)

    monkeypatch.setattr(trainer_module.ckpt, "load", load)
    train_lm("shakespeare-char", tiny(dataset, tmp_path / "split", *args, "train.resume=true"))
    assert seen == ["cpu"]

    times = [r["train_seconds"] for r in map(json.loads, (tmp_path / "split" / "metrics.jsonl").read_text().splitlines())
             if "train_seconds" in r]
    assert times == sorted(times)  # the resumed run's clock continues (no reset to 0)

    def steps(run):
        return [json.loads(line)["step"] for line in (run / "activations.jsonl").read_text().splitlines()]

    assert steps(tmp_path / "split") == steps(tmp_path / "full") == [0, 2, 4, 6, 8, 10, 12]


def test_checkpoint_follows_the_umask(dataset, tmp_path):
    import os
    import stat

    old = os.umask(0o027)
    try:
        train_lm("shakespeare-char", tiny(dataset, tmp_path, "train.max_steps=2", "train.eval_interval=2"))
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "ckpt.pt").stat().st_mode) == 0o640  # not mkstemp's 0600


def test_top_k_zero_means_no_filtering(dataset, tmp_path):
    """Regression: GPT.generate(top_k=0) and ``orthoact sample --top-k 0`` raised IndexError."""
    train_lm("shakespeare-char", tiny(dataset, tmp_path, "train.max_steps=2", "train.eval_interval=2"))
    text = sample_run(tmp_path, prompt="the ", tokens=10, top_k=0)
    assert text.startswith("the ") and len(text) == 14
    model = GPT(GPTConfig(vocab_size=5, n_layer=1, n_head=1, n_embd=4, block_size=4))
    with pytest.raises(ValueError, match="top_k must be an int >= 0"):
        model.generate(torch.zeros(1, 1, dtype=torch.long), 2, top_k=-1)
    from orthoact.cli import main

    assert main(["sample", str(tmp_path), "--prompt", "a", "--tokens", "3", "--top-k", "0"]) == 0


def test_runs_work_from_another_folder(dataset, tmp_path, monkeypatch):
    """Regression: a relative dataset path was stored as given, so eval/sample elsewhere failed."""
    import shutil

    local = tmp_path / "work"
    local.mkdir()
    shutil.copytree(dataset, local / "data")
    monkeypatch.chdir(local)
    train_lm("shakespeare-char", tiny(Path("data"), Path("run"), "train.max_steps=2", "train.eval_interval=2"))
    assert Path(json.loads(Path("run/config.json").read_text())["dataset_path"]).is_absolute()
    monkeypatch.chdir(tmp_path)
    assert evaluate_run(local / "run", eval_iters=1)["step"] == 2


def test_tokenizer_file_must_stay_inside_the_dataset(tmp_path):
    folder = prepare_text(TEXT, tmp_path / "bpe", "bpe", vocab_size=300)
    meta = json.loads((folder / "meta.json").read_text())
    meta["tokenizer_file"] = "../../etc/passwd"
    with pytest.raises(ValueError, match="must be a file inside the dataset folder"):
        decoder(meta, folder)


def test_progress_off_a_terminal_is_a_few_plain_lines(dataset, tmp_path):
    """Regression: progress bars written to a file or a pipe gave one carriage-return update per step."""
    import subprocess
    import sys

    cmd = [sys.executable, "-m", "orthoact", "train", "lm", *tiny(dataset, tmp_path, "train.max_steps=40", "train.eval_interval=40")]
    cmd.remove("train.progress=false")
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "\r" not in result.stderr
    progress_lines = [line for line in result.stderr.splitlines() if line.startswith(tmp_path.name + ":")]
    assert 1 <= len(progress_lines) <= 3 and "40/40 (100%)" in progress_lines[-1], result.stderr


def test_training_loss_is_read_once_per_logged_step(dataset, tmp_path, monkeypatch):
    """No host-device sync per micro-batch: the loss stays a tensor and is read at the log interval."""
    from orthoact.train.trainer import Trainer

    reads = []
    item = torch.Tensor.item
    step = Trainer._train_step

    def counting_step(self):
        monkeypatch.setattr(torch.Tensor, "item", lambda t: reads.append(self.step) or item(t))
        try:
            return step(self)
        finally:
            monkeypatch.setattr(torch.Tensor, "item", item)

    monkeypatch.setattr(Trainer, "_train_step", counting_step)
    train_lm("shakespeare-char", tiny(dataset, tmp_path, "act=hermite:3", "train.max_steps=8", "train.grad_accum=4",
                                      "train.log_interval=4", "train.eval_interval=8"))
    assert reads == []  # nothing read inside the 8 steps of 4 micro-batches
    assert [r["step"] for r in map(json.loads, (tmp_path / "metrics.jsonl").read_text().splitlines())
            if "train_loss" in r] == [4, 8]


def test_cli_keeps_the_traceback_of_a_bug(monkeypatch, capsys):
    from orthoact import cli
    from orthoact._errors import MissingDependency

    def broken(args):
        raise TypeError("a bug")

    monkeypatch.setattr(cli, "_summary", broken)
    with pytest.raises(TypeError, match="a bug"):  # not turned into a one-line user error
        cli.main(["summary"])

    def missing(args):
        raise MissingDependency("plotting needs matplotlib: pip install 'orthoact[plot]'")

    monkeypatch.setattr(cli, "_summary", missing)
    assert cli.main(["summary"]) == 2
    assert "orthoact: error: plotting needs matplotlib" in capsys.readouterr().err
