"""Training and conversion on a CUDA GPU (skipped where CUDA is not available)."""

import json

import numpy as np
import pytest
import torch
from torch import nn

import orthoact
from orthoact.train import checkpoint as ckpt
from orthoact.train.lm import train_lm
from orthoact.train.lm_data import prepare_text

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")

TEXT = "".join(np.random.default_rng(0).choice(["the cat sat on the mat. ", "a dog ran in the park! "], 400))


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return prepare_text(TEXT, tmp_path_factory.mktemp("data") / "tiny", "char", val_fraction=0.2)


def args(dataset, out, *extra):
    return [f"data.dataset={dataset}", f"train.out_dir={out}", "model.n_layer=2", "model.n_head=2", "model.n_embd=64",
            "model.block_size=32", "train.batch_size=8", "train.eval_iters=2", "train.warmup_steps=2",
            "train.progress=false", "train.device=cuda", "train.log_interval=1", "train.max_steps=12",
            "train.eval_interval=4", *extra]


def losses(run):
    return [r["train_loss"] for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines()) if "train_loss" in r]


@pytest.mark.parametrize("act", ["hermite:3", "tropical_rational:5", "rational:5/4"])
def test_resume_on_cuda_equals_the_uninterrupted_run(dataset, tmp_path, act):
    """Checkpoints hold CPU RNG states next to CUDA tensors; resuming must continue the same run."""
    train_lm("shakespeare-char", args(dataset, tmp_path / "full", f"act={act}", "train.dtype=bfloat16"))
    train_lm("shakespeare-char", args(dataset, tmp_path / "split", f"act={act}", "train.dtype=bfloat16", "train.stop_at=6"))
    train_lm("shakespeare-char", args(dataset, tmp_path / "split", f"act={act}", "train.dtype=bfloat16", "train.resume=true"))
    np.testing.assert_allclose(losses(tmp_path / "split"), losses(tmp_path / "full"), rtol=1e-4, atol=1e-4)
    a = ckpt.load(tmp_path / "full" / "ckpt.pt")["model"]
    b = ckpt.load(tmp_path / "split" / "ckpt.pt")["model"]
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=1e-3, atol=1e-4)


def test_train_with_compile_on_cuda(dataset, tmp_path):
    metrics = train_lm("shakespeare-char", args(dataset, tmp_path, "act=hermite:3", "train.compile=true",
                                                "train.dtype=bfloat16"))
    assert np.isfinite(metrics["val_loss"]) and losses(tmp_path)[-1] < losses(tmp_path)[0]


def test_convert_a_bfloat16_model_on_cuda():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(16, 64), nn.GELU(), nn.Linear(64, 16)).cuda().to(torch.bfloat16)
    batches = [torch.randn(32, 16, device="cuda", dtype=torch.bfloat16) for _ in range(2)]
    converted, report = orthoact.convert(model, "tropical_rational", 5, calibration=batches)
    act = converted[1]
    assert all(t.device.type == "cuda" and t.dtype == torch.bfloat16 for t in act.tensors())
    y = converted(batches[0])
    assert y.dtype == torch.bfloat16 and y.device.type == "cuda"
    assert "triton_forward" in type(act(batches[0].float().requires_grad_()).grad_fn).__name__
    torch.testing.assert_close(y.float(), model(batches[0]).float(), rtol=0.1, atol=0.1)
