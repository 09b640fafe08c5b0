"""The language-model recipe: GPT on token files, with any activation.

    orthoact data shakespeare
    orthoact train lm --preset shakespeare-char act=hermite:3
    torchrun --nproc_per_node=8 -m orthoact train lm --preset owt-gpt2-124m act=hermite:3
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from orthoact.models.gpt import GPT, GPTConfig
from orthoact.train import checkpoint as ckpt
from orthoact.train.config import TrainConfig, build, resolve, to_dict
from orthoact.train.distributed import DistInfo, setup, teardown
from orthoact.train.lm_data import decoder, resolve_dataset
from orthoact.train.trainer import Trainer


@dataclass
class DataConfig:
    dataset: str = "shakespeare-char"  # a prepared dataset name (under the data folder) or a folder path


SECTIONS = {"model": GPTConfig, "train": TrainConfig, "data": DataConfig}


class TokenData:
    """Random windows of a token file, read through a memory map."""

    def __init__(self, path: Path, block_size: int) -> None:
        self.data = np.memmap(path, dtype=np.uint16, mode="r")
        if len(self.data) <= block_size + 1:
            raise ValueError(
                f"block_size={block_size} is larger than the data in {path} ({len(self.data)} tokens); "
                "lower model.block_size or prepare more data"
            )
        self.block_size = block_size

    def windows(self, starts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        bs = self.block_size
        x = torch.from_numpy(np.stack([self.data[i : i + bs] for i in starts.tolist()]).astype(np.int64))
        y = torch.from_numpy(np.stack([self.data[i + 1 : i + 1 + bs] for i in starts.tolist()]).astype(np.int64))
        return x, y

    def starts(self, n: int, generator: torch.Generator) -> torch.Tensor:
        return torch.randint(len(self.data) - self.block_size - 1, (n,), generator=generator)


class LMTask:
    """Next-token prediction. Every process draws the same global batch of windows from one
    generator and takes its own slice, so N processes see exactly the data of one process with an
    N times larger batch."""

    def __init__(self, model: GPT, folder: Path, train: TrainConfig, info: DistInfo) -> None:
        self.model = model
        self.cfg = train
        self.info = info
        block = model.config.block_size
        self.train_data = TokenData(folder / "train.bin", block)
        self.val_data = TokenData(folder / "val.bin", block)
        self.generator = torch.Generator().manual_seed(train.seed)

    def _slice(self, x, y):
        b = self.cfg.batch_size
        lo = self.info.rank * b
        return x[lo : lo + b].to(self.info.device, non_blocking=True), y[lo : lo + b].to(self.info.device, non_blocking=True)

    def train_batch(self):
        starts = self.train_data.starts(self.cfg.batch_size * self.info.world_size, self.generator)
        return self._slice(*self.train_data.windows(starts))

    def loss(self, model, batch):
        _, loss = model(*batch)
        return loss

    def evaluate(self, model) -> dict:
        out = {}
        for split, data in (("train", self.train_data), ("val", self.val_data)):
            g = torch.Generator().manual_seed(self.cfg.seed + 1)  # the same windows at every evaluation
            losses = []
            for _ in range(self.cfg.eval_iters):
                x, y = self._slice(*data.windows(data.starts(self.cfg.batch_size * self.info.world_size, g)))
                losses.append(model(x, y)[1].item())
            out[f"{split}_eval_loss"] = sum(losses) / len(losses)
        out["val_loss"] = out.pop("val_eval_loss")
        out["val_ppl"] = math.exp(min(out["val_loss"], 50.0))
        return out

    def state_dict(self) -> dict:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.generator.set_state(state["generator"])


def resolve_config(preset: str, overrides: list[str] = ()) -> dict:
    """The run's config from a preset and ``key=value`` overrides (see :func:`orthoact.train.config.resolve`)."""
    return resolve(SECTIONS, "lm", preset, overrides)


def train_lm(preset: str = "shakespeare-char", overrides: list[str] = ()) -> dict:
    """Train per a preset plus ``key=value`` overrides; returns the last evaluation's metrics."""
    cfg = resolve_config(preset, overrides)
    info = setup(cfg["train"].device)
    try:
        if cfg["train"].threads:
            torch.set_num_threads(cfg["train"].threads)
        folder = resolve_dataset(cfg["data"].dataset)
        meta = json.loads((folder / "meta.json").read_text())
        if cfg["model"].vocab_size in (0, None) or cfg["model"].vocab_size < meta["vocab_size"]:
            cfg["model"] = dataclasses.replace(cfg["model"], vocab_size=meta["vocab_size"])
        torch.manual_seed(cfg["train"].seed + info.rank)
        model = GPT(cfg["model"]).to(info.device)
        task = LMTask(model, folder, cfg["train"], info)
        config = to_dict(cfg) | {"kind": "lm", "preset": preset, "dataset_path": str(folder.resolve())}
        return Trainer(cfg["train"], task, config, info).train()
    finally:
        teardown()


def load_run(run: str | Path, device: str = "cpu") -> tuple[GPT, dict, dict]:
    """The model, the resolved config and the checkpoint of a run folder (or a ckpt.pt path)."""
    state = ckpt.load_run(run, "lm", map_location=device)
    config = state["config"]
    model_cfg = build({"model": GPTConfig}, {"model": config["model"]})["model"]
    model = GPT(model_cfg).to(device)
    model.load_state_dict(state["model"])
    model.eval()
    return model, config, state


def evaluate_run(run: str | Path, eval_iters: int | None = None) -> dict:
    model, config, state = load_run(run)
    train_cfg = build({"train": TrainConfig}, {"train": config["train"]})["train"]
    if eval_iters:
        train_cfg = dataclasses.replace(train_cfg, eval_iters=eval_iters)
    task = LMTask(model, Path(config["dataset_path"]), train_cfg, DistInfo())
    with torch.no_grad():
        return {"step": state["step"], **task.evaluate(model)}


def sample_run(run: str | Path, prompt: str = "\n", tokens: int = 200, temperature: float = 0.8, top_k: int | None = 40,
               seed: int = 0) -> str:
    model, config, _ = load_run(run)
    folder = Path(config["dataset_path"])
    decode, encode = decoder(json.loads((folder / "meta.json").read_text()), folder)
    ids = encode(prompt) or [0]
    g = torch.Generator().manual_seed(seed)
    out = model.generate(torch.tensor([ids]), tokens, temperature=temperature, top_k=top_k, generator=g)
    return decode(out[0].tolist())
