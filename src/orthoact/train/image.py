"""The vision recipe: ConvNeXt on Fashion-MNIST (CPU) or ImageNet-style folders (GPUs).

    orthoact data fashion-mnist
    orthoact train image --preset fmnist-convnext act=hermite:3
    torchrun --nproc_per_node=8 -m orthoact train image --preset imagenet-convnext-t act=hermite:3 data.dataset=/data/imagenet
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from orthoact.models.convnext import ConvNeXt, ConvNeXtConfig
from orthoact.train import checkpoint as ckpt
from orthoact.train.config import TrainConfig, build, resolve, to_dict
from orthoact.train.distributed import DistInfo, setup, teardown
from orthoact.train.image_data import ImageFolder, TensorImages, load_fashion_mnist, mix_batch
from orthoact.train.trainer import Trainer


@dataclass
class ImageDataConfig:
    dataset: str = "fashion-mnist"  # or a folder with train/<class>/* and val/<class>/*
    image_size: int = 224  # folders: training crop and evaluation size
    epochs: float = 0.0  # > 0: sets train.max_steps from the dataset size and global batch
    warmup_epochs: float = -1.0  # >= 0: sets train.warmup_steps
    eval_every_epochs: float = 1.0  # > 0: sets train.eval_interval
    augment: bool = True
    mixup: float = 0.0  # Beta(alpha, alpha) of Mixup; 0 disables
    cutmix: float = 0.0  # Beta(alpha, alpha) of CutMix; 0 disables
    label_smoothing: float = 0.0
    workers: int = 4  # folder datasets: decoding processes
    on_bad_image: str = "skip"  # skip (with a warning count) or error
    eval_batch_size: int = 256


SECTIONS = {"model": ConvNeXtConfig, "train": TrainConfig, "data": ImageDataConfig}


def _seeded(*parts: int) -> torch.Generator:
    """A generator determined by the run seed and a position (so resuming needs no RNG state)."""
    seed = 0
    for p in parts:
        seed = (seed * 1_000_003 + int(p)) % (2**63 - 1)
    return torch.Generator().manual_seed(seed)


class _FolderItems(torch.utils.data.Dataset):
    def __init__(self, folder: ImageFolder, seed: int, epoch: int) -> None:
        self.folder, self.seed, self.epoch = folder, seed, epoch

    def __len__(self) -> int:
        return len(self.folder)

    def __getitem__(self, index: int):
        # the augmentation of sample `index` depends only on (seed, epoch, index): any worker count
        return self.folder.load(index, _seeded(self.seed, self.epoch, index))


class ImageTask:
    """Classification with an epoch-wise shuffled sampler shared by all processes."""

    def __init__(self, model: ConvNeXt, data: ImageDataConfig, train: TrainConfig, info: DistInfo) -> None:
        self.model, self.data_cfg, self.cfg, self.info = model, data, train, info
        if data.dataset == "fashion-mnist":
            self.train_set = TensorImages(*load_fashion_mnist("train"), augment=data.augment)
            self.val_set = TensorImages(*load_fashion_mnist("test"), augment=False)
        else:
            root = Path(data.dataset)
            if not (root / "train").is_dir() or not (root / "val").is_dir():
                raise FileNotFoundError(f"image dataset {root} needs train/<class>/* and val/<class>/* folders")
            self.train_set = ImageFolder(root / "train", data.image_size, True, on_bad_image=data.on_bad_image)
            self.val_set = ImageFolder(root / "val", data.image_size, False, classes=self.train_set.classes,
                                       on_bad_image=data.on_bad_image)
        self.num_classes = len(self.train_set.classes)
        if model.config.num_classes != self.num_classes:
            raise ValueError(f"model.num_classes={model.config.num_classes} but the dataset has {self.num_classes} classes")
        self.global_batch = train.batch_size * info.world_size
        self.steps_per_epoch = max(1, len(self.train_set) // self.global_batch)
        self.epoch, self.position = 0, 0
        self._iterator = None
        self._perm, self._perm_epoch = None, -1

    # -- sampling ---------------------------------------------------------------------------------
    def _permutation(self) -> torch.Tensor:
        if self._perm_epoch != self.epoch:  # one shuffle per epoch, a function of (seed, epoch)
            self._perm = torch.randperm(len(self.train_set), generator=_seeded(self.cfg.seed, self.epoch))
            self._perm_epoch = self.epoch
        return self._perm

    def _rank_slice(self, indices: torch.Tensor) -> torch.Tensor:
        b = self.cfg.batch_size
        return indices[self.info.rank * b : (self.info.rank + 1) * b]

    def _folder_batches(self):
        """Batches of the rest of this epoch, decoded by DataLoader workers."""
        perm = self._permutation()
        batches = [self._rank_slice(perm[i : i + self.global_batch]).tolist()
                   for i in range(self.position * self.global_batch, self.steps_per_epoch * self.global_batch, self.global_batch)]
        loader = torch.utils.data.DataLoader(
            _FolderItems(self.train_set, self.cfg.seed, self.epoch), batch_sampler=batches,
            num_workers=self.data_cfg.workers, pin_memory=self.info.device.type == "cuda",
            persistent_workers=False,
        )
        return iter(loader)

    def train_batch(self):
        if self.position >= self.steps_per_epoch:
            self.epoch, self.position, self._iterator = self.epoch + 1, 0, None
        if isinstance(self.train_set, TensorImages):
            perm = self._permutation()
            idx = self._rank_slice(perm[self.position * self.global_batch : (self.position + 1) * self.global_batch])
            x, y = self.train_set.batch(idx, _seeded(self.cfg.seed, self.epoch, self.position, 1))
        else:
            if self._iterator is None:
                self._iterator = self._folder_batches()
            x, y = next(self._iterator)
        d = self.data_cfg
        target = None
        if d.mixup > 0 or d.cutmix > 0 or d.label_smoothing > 0:
            x, target = mix_batch(x, y, self.num_classes, _seeded(self.cfg.seed, self.epoch, self.position, 2),
                                  d.mixup, d.cutmix, d.label_smoothing)
        self.position += 1
        dev = self.info.device
        return x.to(dev, non_blocking=True), y.to(dev, non_blocking=True), (target.to(dev) if target is not None else None)

    def loss(self, model, batch):
        x, y, target = batch
        logits = model(x).float()
        return F.cross_entropy(logits, target if target is not None else y)

    # -- evaluation -------------------------------------------------------------------------------
    def _val_batches(self):
        indices = torch.arange(self.info.rank, len(self.val_set), self.info.world_size)
        for i in range(0, len(indices), self.data_cfg.eval_batch_size):
            chunk = indices[i : i + self.data_cfg.eval_batch_size]
            if isinstance(self.val_set, TensorImages):
                yield self.val_set.batch(chunk)
            else:
                items = [self.val_set.load(int(j)) for j in chunk]
                yield torch.stack([a for a, _ in items]), torch.tensor([b for _, b in items])

    def evaluate(self, model) -> dict:
        total, loss_sum, top1, top5 = 0, 0.0, 0, 0
        for x, y in self._val_batches():
            x, y = x.to(self.info.device), y.to(self.info.device)
            logits = model(x).float()
            loss_sum += F.cross_entropy(logits, y, reduction="sum").item()
            best = logits.topk(min(5, logits.shape[1]), dim=1).indices
            top1 += (best[:, 0] == y).sum().item()
            top5 += (best == y[:, None]).any(1).sum().item()
            total += len(y)
        return {"val_loss": loss_sum / total, "top1": 100.0 * top1 / total, "top5": 100.0 * top5 / total}

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "position": self.position}

    def load_state_dict(self, state: dict) -> None:
        self.epoch, self.position, self._iterator = state["epoch"], state["position"], None


def resolve_config(preset: str, overrides: list[str] = ()) -> dict:
    """The run's config from a preset and ``key=value`` overrides (see :func:`orthoact.train.config.resolve`)."""
    return resolve(SECTIONS, "image", preset, overrides)


def train_image(preset: str = "fmnist-convnext", overrides: list[str] = ()) -> dict:
    cfg = resolve_config(preset, overrides)
    if cfg["data"].dataset != "fashion-mnist":  # stored absolute: eval and resume work from any folder
        cfg["data"] = dataclasses.replace(cfg["data"], dataset=str(Path(cfg["data"].dataset).resolve()))
    info = setup(cfg["train"].device)
    try:
        if cfg["train"].threads:
            torch.set_num_threads(cfg["train"].threads)
        torch.manual_seed(cfg["train"].seed + info.rank)
        model = ConvNeXt(cfg["model"]).to(info.device)
        task = ImageTask(model, cfg["data"], cfg["train"], info)
        d, t = cfg["data"], cfg["train"]
        updates = {}
        if d.epochs > 0:
            updates["max_steps"] = max(1, math.ceil(d.epochs * task.steps_per_epoch))
        if d.warmup_epochs >= 0:
            updates["warmup_steps"] = int(d.warmup_epochs * task.steps_per_epoch)
        if d.eval_every_epochs > 0:
            updates["eval_interval"] = max(1, round(d.eval_every_epochs * task.steps_per_epoch))
        cfg["train"] = dataclasses.replace(t, **updates)
        task.cfg = cfg["train"]
        config = to_dict(cfg) | {"kind": "image", "preset": preset, "steps_per_epoch": task.steps_per_epoch}
        return Trainer(cfg["train"], task, config, info).train()
    finally:
        teardown()


def load_run(run: str | Path, device: str = "cpu", ema: bool = False) -> tuple[ConvNeXt, dict, dict]:
    state = ckpt.load_run(run, "image", map_location=device)
    config = state["config"]
    sections = build({"model": ConvNeXtConfig, "train": TrainConfig, "data": ImageDataConfig},
                     {k: config[k] for k in ("model", "train", "data")})
    model = ConvNeXt(sections["model"]).to(device)
    model.load_state_dict(state["ema"] if ema and state.get("ema") else state["model"])
    model.eval()
    return model, sections, state


def evaluate_run(run: str | Path) -> dict:
    model, sections, state = load_run(run)
    task = ImageTask(model, sections["data"], sections["train"], DistInfo())
    with torch.no_grad():
        metrics = {"step": state["step"], **task.evaluate(model)}
        if state.get("ema"):
            ema_model, _, _ = load_run(run, ema=True)
            metrics.update({f"ema_{k}": v for k, v in task.evaluate(ema_model).items()})
    return metrics
