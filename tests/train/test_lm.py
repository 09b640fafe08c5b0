"""The language-model recipe: training, exact resume, DDP equivalence, data preparation, bad input."""

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch

import orthoact
from conftest import assert_torchrun_matches
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


@pytest.mark.parametrize("act", ["gelu", "hermite:3", "fourier:5", "tropical:5", "tropical_rational:5"])
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

    assert main(["train", "lm", "--preset", "shakespeare-char", *tiny(dataset, tmp_path, "train.max_steps=2", "train.eval_interval=2")]) == 0
    assert (tmp_path / "ckpt.pt").exists()
    assert main(["train", "lm", "lrr=3"]) == 2
    assert "unknown config key 'lrr'" in capsys.readouterr().err
    assert main(["sample", str(tmp_path), "--prompt", "a", "--tokens", "5"]) == 0
