"""The vision recipe: ConvNeXt, IDX and folder datasets, training, resume, DDP, bad input."""

import gzip
import json
import re
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

import orthoact
from conftest import ACT_NAMES, assert_torchrun_matches
from orthoact.models import ConvNeXtConfig, convnext
from orthoact.train import checkpoint as ckpt
from orthoact.train.image import evaluate_run, train_image
from orthoact.train.image_data import ImageFolder, fashion_mnist_dir, mix_batch, read_idx

PIL = pytest.importorskip("PIL.Image")


def write_idx(path: Path, array: np.ndarray, compress: bool) -> None:
    code = {np.uint8: 0x08}[array.dtype.type]
    header = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    data = header + array.tobytes()
    path.write_bytes(gzip.compress(data) if compress else data)


def test_read_idx(tmp_path):
    images = np.random.default_rng(0).integers(0, 256, (5, 28, 28), dtype=np.uint8)
    write_idx(tmp_path / "a.gz", images, True)
    write_idx(tmp_path / "b", images, False)
    assert np.array_equal(read_idx(tmp_path / "a.gz"), images)
    assert np.array_equal(read_idx(tmp_path / "b"), images)
    (tmp_path / "bad").write_bytes(b"\x01\x02\x03\x04")
    with pytest.raises(ValueError, match="is not an IDX file"):
        read_idx(tmp_path / "bad")
    (tmp_path / "short").write_bytes((tmp_path / "b").read_bytes()[:-10])
    with pytest.raises(ValueError, match="but the file has"):
        read_idx(tmp_path / "short")


def test_real_fashion_mnist_if_installed():
    try:
        folder = fashion_mnist_dir()
    except FileNotFoundError:
        pytest.skip("Fashion-MNIST not installed (orthoact data fashion-mnist)")
    images = read_idx(folder / "t10k-images-idx3-ubyte.gz")
    labels = read_idx(folder / "t10k-labels-idx1-ubyte.gz")
    assert images.shape == (10000, 28, 28) and labels.shape == (10000,) and labels.max() == 9


def test_missing_fashion_mnist_says_how(tmp_path, monkeypatch):
    monkeypatch.setenv("ORTHOACT_FMNIST_DIR", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="run: orthoact data fashion-mnist"):
        train_image("fmnist-convnext", ["train.max_steps=1"])


def make_folder(root: Path, n_per_class: int = 12, size: int = 32, seed: int = 0) -> Path:
    """Two classes: horizontal vs vertical stripes, with noise."""
    rng = np.random.default_rng(seed)
    for split in ("train", "val"):
        for label, name in enumerate(("horizontal", "vertical")):
            d = root / split / name
            d.mkdir(parents=True, exist_ok=True)
            for i in range(n_per_class):
                stripes = (np.arange(size) // 4 % 2 * 200).astype(np.uint8)
                img = np.tile(stripes[:, None] if label == 0 else stripes[None, :], (size, 1) if label == 0 else (1, size))[:size, :size]
                img = np.clip(img + rng.integers(0, 50, (size, size)), 0, 255).astype(np.uint8)
                PIL.fromarray(np.stack([img] * 3, -1)).save(d / f"{i}.png")
    return root


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return make_folder(tmp_path_factory.mktemp("images"))


def tiny(folder, out, *extra):
    return [
        f"data.dataset={folder}", f"train.out_dir={out}", "model.variant=", "model.depths=1,1,1,1", "model.dims=8,16,16,16",
        "model.num_classes=2", "model.in_chans=3", "model.stem_stride=2", "data.image_size=32", "data.workers=0", "data.epochs=0",
        "data.warmup_epochs=-1", "data.eval_every_epochs=0", "train.batch_size=8", "train.lr=5e-3", "train.warmup_steps=2",
        "train.progress=false", "train.threads=1", "train.log_interval=1", "data.eval_batch_size=8", *extra,
    ]


def losses(run: Path) -> list[float]:
    return [r["train_loss"] for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines()) if "train_loss" in r]


@pytest.mark.parametrize("act", ["gelu", *ACT_NAMES])
def test_tiny_convnext_learns(folder, tmp_path, act):
    metrics = train_image("fmnist-convnext", tiny(folder, tmp_path, f"act={act}", "train.max_steps=24", "train.eval_interval=24"))
    trace = losses(tmp_path)
    assert np.mean(trace[-4:]) < np.mean(trace[:4]), trace
    assert set(metrics) >= {"val_loss", "top1", "top5"} and metrics["top5"] == 100.0


def test_resume_equals_uninterrupted(folder, tmp_path):
    args = ["act=hermite:3", "train.max_steps=8", "train.eval_interval=4", "data.label_smoothing=0.1", "data.mixup=0.8",
            "data.cutmix=1.0", "model.drop_path=0.1", "train.ema_decay=0.9"]
    train_image("fmnist-convnext", tiny(folder, tmp_path / "full", *args))
    train_image("fmnist-convnext", tiny(folder, tmp_path / "split", *args, "train.stop_at=3"))
    train_image("fmnist-convnext", tiny(folder, tmp_path / "split", *args, "train.resume=true"))
    assert losses(tmp_path / "split") == losses(tmp_path / "full")
    a, b = ckpt.load(tmp_path / "full" / "ckpt.pt"), ckpt.load(tmp_path / "split" / "ckpt.pt")
    for part in ("model", "ema"):
        for name in a[part]:
            assert torch.equal(a[part][name], b[part][name]), (part, name)
    assert a["ema_updates"] == b["ema_updates"] == 8  # torch's AveragedModel, one update per step
    assert not all(torch.equal(a["ema"][k], a["model"][k]) for k in a["model"])
    metrics = evaluate_run(tmp_path / "full")
    assert "ema_top1" in metrics and metrics["step"] == 8


@pytest.mark.slow
def test_torchrun_two_processes_equal_one(folder, tmp_path):
    common = ["act=hermite:3", "train.max_steps=4", "train.eval_interval=4"]
    train_image("fmnist-convnext", tiny(folder, tmp_path / "single", *common, "train.batch_size=8"))
    assert_torchrun_matches("image", "fmnist-convnext", tmp_path / "single", tmp_path / "ddp",
                            [*tiny(folder, tmp_path / "ddp", *common), "train.batch_size=4"], losses)


def test_folder_dataset_and_bad_inputs(folder, tmp_path):
    ds = ImageFolder(folder / "train", size=32, train=True)
    assert ds.classes == ["horizontal", "vertical"] and len(ds) == 24
    x, label = ds.load(0, torch.Generator().manual_seed(0))
    assert x.shape == (3, 32, 32) and label == 0
    (tmp_path / "empty" / "a").mkdir(parents=True)
    with pytest.raises(ValueError, match=re.escape(f"class folder {tmp_path / 'empty' / 'a'} has no images")):
        ImageFolder(tmp_path / "empty")
    (tmp_path / "flat").mkdir()
    (tmp_path / "flat" / "img.png").write_bytes(b"")
    with pytest.raises(ValueError, match="has no class folders"):
        ImageFolder(tmp_path / "flat")
    with pytest.raises(ValueError, match="differ from the training classes"):
        ImageFolder(folder / "val", classes=["horizontal", "vertical", "diagonal"])
    broken = make_folder(tmp_path / "broken", n_per_class=2)
    (broken / "train" / "vertical" / "zz_broken.png").write_bytes(b"not a png")
    skipping = ImageFolder(broken / "train", size=32)
    with pytest.warns(RuntimeWarning, match="skipping unreadable image .*zz_broken.png \\(1 so far\\)"):
        x, label = skipping.load(len(skipping) - 1)
    assert skipping.skipped == 1 and x.shape == (3, 32, 32)
    strict = ImageFolder(broken / "train", size=32, on_bad_image="error")
    with pytest.raises(ValueError, match="cannot read image .*zz_broken.png"):
        strict.load(len(strict) - 1)


def test_convnext_model():
    model = convnext("atto", activation="hermite:3", num_classes=7)
    assert sum(isinstance(m, orthoact.Hermite) for m in model.modules()) == 12
    assert model(torch.randn(1, 3, 64, 64)).shape == (1, 7)
    with pytest.raises(ValueError, match="input size 20x20 is too small for this ConvNeXt"):
        model(torch.randn(1, 3, 20, 20))
    with pytest.raises(ValueError, match=re.escape("ConvNeXt expects (N, 3, H, W) images, got shape (1, 1, 64, 64)")):
        model(torch.randn(1, 1, 64, 64))
    with pytest.raises(ValueError, match="variant must be one of"):
        ConvNeXtConfig(variant="huge")
    with pytest.raises(ValueError, match="needs four positive ints"):
        ConvNeXtConfig(variant="", depths="1,2", dims="8,8")
    tiny_t = sum(p.numel() for p in convnext("tiny").parameters())
    assert abs(tiny_t - 28.59e6) < 0.05e6  # ConvNeXt-T: 28.6M parameters
    per_channel = convnext("atto", activation=lambda: orthoact.Tropical(5, groups=160), num_classes=3)
    assert per_channel(torch.randn(2, 3, 32, 32)).shape == (2, 3)


def test_num_classes_mismatch(folder, tmp_path):
    with pytest.raises(ValueError, match="model.num_classes=3 but the dataset has 2 classes"):
        train_image("fmnist-convnext", tiny(folder, tmp_path, "model.num_classes=3", "train.max_steps=1"))


def test_mix_batch():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(4, 3, 8, 8)
    y = torch.tensor([0, 1, 2, 3])
    mixed, target = mix_batch(x, y, 5, g, mixup=0.8, cutmix=1.0, smoothing=0.1)
    assert mixed.shape == x.shape and target.shape == (4, 5)
    torch.testing.assert_close(target.sum(1), torch.ones(4))
    _, smooth = mix_batch(x, y, 5, g, mixup=0.0, cutmix=0.0, smoothing=0.1)
    assert smooth[0, 0].item() == pytest.approx(0.92) and smooth[0, 1].item() == pytest.approx(0.02)
