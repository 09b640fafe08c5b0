"""One trainer for every recipe: AdamW groups, warmup + cosine, accumulation, autocast, DDP,
metrics as JSON lines, activation snapshots, atomic checkpoints and exact resume.

A *task* supplies the data and the loss::

    class Task:
        model: nn.Module
        def train_batch(self): ...            # this process's next micro-batch, on the device
        def loss(self, model, batch): ...     # scalar loss
        def evaluate(self, model) -> dict: ...  # metrics on held-out data (all processes take part)
        def state_dict(self) -> dict: ...     # data position (sampler state) for exact resume
        def load_state_dict(self, state): ...

Resuming from ``out_dir/ckpt.pt`` restores model, optimizer, scheduler, scaler, every RNG and the
data position, so a resumed run continues exactly as an uninterrupted one (bit-for-bit on CPU).
"""

from __future__ import annotations

import contextlib
import json
import math
import time
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from orthoact._progress import progress
from orthoact.activation import BasisActivation
from orthoact.train import checkpoint as ckpt
from orthoact.train.config import TrainConfig
from orthoact.train.distributed import DistInfo, all_reduce_mean

_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def parameter_groups(model: nn.Module, weight_decay: float, act_lr_mult: float | None = None) -> list[dict]:
    """AdamW groups: decay on >= 2-D weights; none on norms, biases and activation parameters, whose
    learning rate is multiplied by ``act_lr_mult`` (``None``: each family's tuned default,
    :attr:`orthoact.declarations.FamilySpec.lr_mult`)."""
    mult_of = {}
    for m in model.modules():
        if isinstance(m, BasisActivation):
            for p in m.parameters():
                mult_of[id(p)] = m.spec.lr_mult if act_lr_mult is None else act_lr_mult
    decay, no_decay, act = [], [], {}
    for _, p in model.named_parameters():
        if not p.requires_grad:
            continue
        if id(p) in mult_of:
            act.setdefault(mult_of[id(p)], []).append(p)
        elif p.dim() >= 2:
            decay.append(p)
        else:
            no_decay.append(p)
    groups = [
        {"params": decay, "weight_decay": weight_decay, "lr_mult": 1.0, "name": "decay"},
        {"params": no_decay, "weight_decay": 0.0, "lr_mult": 1.0, "name": "no_decay"},
    ]
    for mult, params in act.items():
        name = "activations" if len(act) == 1 else f"activations x{mult:g}"
        groups.append({"params": params, "weight_decay": 0.0, "lr_mult": mult, "name": name})
    return [g for g in groups if g["params"]]


def _fused_adamw(groups: list[dict]) -> bool:
    """Whether the fused AdamW supports these parameters (floating, on CPU or CUDA)."""
    params = [p for g in groups for p in g["params"]]
    return bool(params) and all(p.is_floating_point() and p.device.type in ("cpu", "cuda") for p in params)


RUN_FILES = ("ckpt.pt", "metrics.jsonl", "activations.jsonl", "config.json")


def read_metrics(run: str | Path) -> list[dict]:
    """The rows a run logged (``metrics.jsonl``): training rows and evaluation rows; [] if none."""
    path = Path(run) / "metrics.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def lr_at(step: int, cfg: TrainConfig) -> float:
    """Linear warmup to ``lr``, then cosine decay to ``min_lr`` at ``max_steps``."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    span = max(1, cfg.max_steps - cfg.warmup_steps)
    progress = min(1.0, (step - cfg.warmup_steps) / span)
    return cfg.min_lr + 0.5 * (1.0 + math.cos(math.pi * progress)) * (cfg.lr - cfg.min_lr)


def activation_snapshot(model: nn.Module) -> dict:
    """Parameters of every orthoact activation (small: a few numbers per module)."""
    out = {}
    for name, m in model.named_modules():
        if isinstance(m, BasisActivation):
            out[name] = {
                "family": m.family, "config": m.config(),
                "parameters": {n: p.detach().float().cpu().tolist() for n, p in list(m.named_parameters()) + list(m.named_buffers())},
            }
    return out


class Trainer:
    def __init__(self, cfg: TrainConfig, task, config: dict, info: DistInfo | None = None) -> None:
        self.cfg = cfg
        self.task = task
        self.config = config
        self.info = info or DistInfo()
        self.device = self.info.device
        self.model = task.model
        self.out_dir = Path(cfg.out_dir)
        groups = parameter_groups(self.model, cfg.weight_decay, cfg.act_lr_mult)
        for group in groups:
            group["lr"] = cfg.lr * group["lr_mult"]
        # The fused AdamW (CUDA, and CPU since PyTorch 2.4) is one kernel over all parameters: on the
        # 2-core CPU it took 2.5 ms a step for the small ConvNeXt where the per-tensor loop took 9.7 ms.
        self.optimizer = torch.optim.AdamW(groups, lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), fused=_fused_adamw(groups))
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda step: lr_at(step, cfg) / cfg.lr  # the same factor for every group
        )
        self.dtype = _DTYPES[cfg.dtype]
        self.scaler = torch.amp.GradScaler(self.device.type) if cfg.dtype == "float16" else None
        self.step = 0
        self.train_seconds = 0.0  # time in training steps only (no evaluation, no checkpoints), kept across resumes
        self.elapsed = 0.0  # wall time of the run before this process (resumed runs)
        self._start = time.perf_counter()
        self.history: list[dict] = []
        train_model = self.model
        if self.info.enabled:
            train_model = nn.parallel.DistributedDataParallel(
                train_model, device_ids=[self.device.index] if self.device.type == "cuda" else None
            )
        if cfg.compile:
            train_model = torch.compile(train_model)
        self.train_model = train_model
        self.writer = None
        self.ema = None
        if cfg.ema_decay > 0:  # parameters and buffers averaged; the first update copies the model
            self.ema = AveragedModel(self.model, multi_avg_fn=get_ema_multi_avg_fn(cfg.ema_decay), use_buffers=True)
            self.ema.eval().requires_grad_(False)

    # -- bookkeeping ------------------------------------------------------------------------------
    def _autocast(self):
        if self.dtype == torch.float32:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.dtype)

    def _log(self, row: dict) -> None:
        self.history.append(row)
        if not self.info.is_main:
            return
        with open(self.out_dir / "metrics.jsonl", "a") as f:
            f.write(json.dumps(row) + "\n")
        if self.writer is not None:
            for key, value in row.items():
                if key != "step" and isinstance(value, (int, float)):
                    self.writer.add_scalar(key, value, row["step"])

    def _snapshot(self) -> None:
        modules = activation_snapshot(self.model) if self.info.is_main else {}
        if modules:  # nothing to record for a model without orthoact activations
            with open(self.out_dir / "activations.jsonl", "a") as f:
                f.write(json.dumps({"step": self.step, "modules": modules}) + "\n")

    def state_dict(self) -> dict:
        rng = ckpt.rng_state()
        if self.info.enabled:
            states = [None] * self.info.world_size
            dist.all_gather_object(states, rng)
        else:
            states = [rng]
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict() if self.scaler is not None else {},
            "step": self.step,
            "rng": states,
            "data": self.task.state_dict(),
            "config": self.config,
            "world_size": self.info.world_size,
            "ema": self.ema.module.state_dict() if self.ema is not None else {},  # loads into a plain model
            "ema_updates": int(self.ema.n_averaged) if self.ema is not None else 0,
            "timing": {"train_seconds": self.train_seconds, "elapsed": self.elapsed + time.perf_counter() - self._start},
        }

    def save(self) -> None:
        state = self.state_dict()  # every rank takes part in gathering the RNG states
        if self.info.is_main:
            ckpt.save_atomic(state, self.out_dir / "ckpt.pt")

    def load(self, path: Path) -> None:
        # On the CPU: RNG states must stay CPU tensors (torch.set_rng_state rejects CUDA ones); the
        # model and optimizer states are copied to their parameters' device by load_state_dict.
        state = ckpt.load(path, map_location="cpu")
        if state.get("world_size", 1) != self.info.world_size:
            raise ValueError(
                f"checkpoint {path} was written by {state.get('world_size')} process(es), this run has "
                f"{self.info.world_size}; exact resume needs the same number"
            )
        self.model.load_state_dict(state["model"])
        if self.ema is not None and state.get("ema"):
            self.ema.module.load_state_dict(state["ema"])
            self.ema.n_averaged.fill_(state.get("ema_updates", state["step"]))
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        if self.scaler is not None and state["scaler"]:
            self.scaler.load_state_dict(state["scaler"])
        self.step = state["step"]
        timing = state.get("timing", {})  # older checkpoints: timing starts again
        self.train_seconds, self.elapsed = timing.get("train_seconds", 0.0), timing.get("elapsed", 0.0)
        ckpt.set_rng_state(state["rng"][self.info.rank])
        self.task.load_state_dict(state["data"])
        if self.info.is_main:  # drop rows written after the checkpoint by the interrupted run
            for name in ("metrics.jsonl", "activations.jsonl"):
                log = self.out_dir / name
                if log.exists():
                    kept = [line for line in log.read_text().splitlines() if line.strip() and json.loads(line)["step"] <= self.step]
                    log.write_text("".join(line + "\n" for line in kept))

    # -- the loop ---------------------------------------------------------------------------------
    def evaluate(self) -> dict:
        self.model.eval()
        with torch.no_grad(), self._autocast():
            metrics = self.task.evaluate(self.model)
            if self.ema is not None:
                metrics.update({f"ema_{k}": v for k, v in self.task.evaluate(self.ema).items()})
        self.model.train()
        return {k: all_reduce_mean(v, self.info) for k, v in metrics.items()}

    def _check_out_dir(self) -> None:
        """A new run never replaces a previous one silently."""
        cfg = self.cfg
        found = [name for name in RUN_FILES if (self.out_dir / name).exists()]
        if cfg.resume:
            if not (self.out_dir / "ckpt.pt").is_file():
                raise FileNotFoundError(f"no checkpoint to resume from at {self.out_dir / 'ckpt.pt'}; start without train.resume=true")
        elif found and not cfg.overwrite:
            raise FileExistsError(
                f"train.out_dir={str(self.out_dir)!r} already holds a run ({', '.join(found)}); continue it with "
                "train.resume=true, replace it with train.overwrite=true, or choose another train.out_dir"
            )

    def _begin(self) -> None:
        """Check the run folder, resume or start afresh, write the config, open TensorBoard."""
        cfg = self.cfg
        self._check_out_dir()
        if self.info.enabled:
            dist.barrier()  # every process checked before the first one writes
        if self.info.is_main:
            self.out_dir.mkdir(parents=True, exist_ok=True)
        if cfg.resume:
            self.load(self.out_dir / "ckpt.pt")
        elif self.info.is_main:
            for name in RUN_FILES:
                (self.out_dir / name).unlink(missing_ok=True)
        if self.info.is_main:
            (self.out_dir / "config.json").write_text(json.dumps(self.config, indent=2))
            if cfg.tensorboard:
                try:
                    from torch.utils.tensorboard import SummaryWriter

                    self.writer = SummaryWriter(str(self.out_dir / "tensorboard"))
                except ImportError:
                    print("tensorboard is not installed (pip install tensorboard); logging JSON lines only")

    def _train_step(self) -> tuple[torch.Tensor, float]:
        """One optimizer step over ``grad_accum`` micro-batches; returns the step's loss as a tensor on
        the device (not read here: reading it is a host-device sync) and the learning rate used."""
        cfg = self.cfg
        total = torch.zeros((), device=self.device)
        for micro in range(cfg.grad_accum):
            batch = self.task.train_batch()
            sync = micro == cfg.grad_accum - 1
            no_sync = self.train_model.no_sync if (self.info.enabled and not sync) else contextlib.nullcontext
            with no_sync():
                with self._autocast():
                    loss = self.task.loss(self.train_model, batch) / cfg.grad_accum
                (self.scaler.scale(loss) if self.scaler is not None else loss).backward()
            total += loss.detach().float()
        if self.scaler is not None:
            self.scaler.unscale_(self.optimizer)
        if cfg.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip)
        lr = self.optimizer.param_groups[0]["lr"]
        if self.scaler is not None:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        if self.ema is not None:
            self.ema.update_parameters(self.model)
        self.scheduler.step()
        self.step += 1
        return total, lr

    def _due(self, interval: int) -> bool:
        return self.step % interval == 0 or self.step == self.cfg.max_steps

    def train(self) -> dict:
        """Train to ``max_steps`` (or ``stop_at``); returns the last evaluation's metrics.

        The training loss stays on the device and is read at each log interval (as nanoGPT does: one
        host-device sync per logged step, not one per micro-batch); a non-finite loss stops the run
        there.
        """
        cfg = self.cfg
        self._begin()
        snapshot_every = cfg.snapshot_interval or cfg.eval_interval
        if self.step == 0:
            self._snapshot()
        self.model.train()
        self._start = time.perf_counter()
        start = self._start - self.elapsed  # a resumed run's clock continues
        bar = progress(total=cfg.max_steps, initial=self.step, disable=not (cfg.progress and self.info.is_main),
                       desc=self.out_dir.name)
        last = {}
        while self.step < cfg.max_steps:
            step_start = time.perf_counter()
            loss, lr = self._train_step()
            if self._due(cfg.log_interval):
                value = all_reduce_mean(loss.item(), self.info)  # the sync: the timing below includes the queued work
                if not math.isfinite(value):
                    raise FloatingPointError(f"training loss is {value} at step {self.step}; lower train.lr or check the data")
                self.train_seconds += time.perf_counter() - step_start
                self._log({"step": self.step, "train_loss": value, "lr": lr, "time": time.perf_counter() - start,
                           "train_seconds": self.train_seconds})
                bar.set_postfix(loss=f"{value:.4f}")
            else:
                self.train_seconds += time.perf_counter() - step_start
            bar.update(1)
            if self._due(snapshot_every):
                self._snapshot()
            if self._due(cfg.eval_interval):
                last = {"step": self.step, **self.evaluate(), "time": time.perf_counter() - start}
                self._log(last)
                bar.write(" ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}" for k, v in last.items()))
                if cfg.checkpoint:
                    self.save()
            if cfg.stop_at and self.step >= cfg.stop_at and self.step < cfg.max_steps:
                if cfg.checkpoint and self.step % cfg.eval_interval != 0:
                    self.save()
                break
        bar.close()
        if self.writer is not None:
            self.writer.close()
        return last
