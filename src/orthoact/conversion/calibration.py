"""Recording what each activation of a model receives on calibration batches."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from orthoact.conversion.sites import Site

__all__ = ["Recorded", "record_inputs", "call_model", "MAX_RECORDED", "PER_CALL"]

MAX_RECORDED = 200_000  # values kept per activation site
PER_CALL = 20_000  # values sampled from one call


@dataclass
class Recorded:
    """A sample of the inputs one activation received, and where it ran (device, dtype)."""

    values: Tensor  # float32, on the CPU
    count: int  # how many inputs it received in all
    device: torch.device | None = None
    dtype: torch.dtype | None = None

    @property
    def placement(self) -> dict:
        return {"device": self.device, "dtype": self.dtype} if self.dtype is not None and self.values.numel() else {}


class _Recorder(nn.Module):
    """Stands in for an activation during calibration: records a sample of its inputs."""

    def __init__(self, original, generator: torch.Generator) -> None:
        super().__init__()
        self.original = original
        self.samples: list[Tensor] = []
        self.count = 0
        self.generator = generator
        self.device: torch.device | None = None
        self.dtype: torch.dtype | None = None

    def forward(self, x, *args, **kwargs):
        self.device, self.dtype = x.device, x.dtype
        flat = x.detach().reshape(-1).float().cpu()
        if flat.numel() > PER_CALL:
            flat = flat[torch.randint(flat.numel(), (PER_CALL,), generator=self.generator)]
        self.samples.append(flat)
        self.count += x.numel()
        return self.original(x, *args, **kwargs)

    def recorded(self) -> Recorded:
        values = torch.cat(self.samples) if self.samples else torch.empty(0)
        if values.numel() > MAX_RECORDED:
            values = values[torch.randperm(values.numel(), generator=self.generator)[:MAX_RECORDED]]
        return Recorded(values, self.count, self.device, self.dtype)


def call_model(model: nn.Module, batch):
    """``model(batch)``: a dict is keyword arguments, a tuple or list positional ones."""
    if isinstance(batch, Mapping):
        return model(**batch)
    if isinstance(batch, (tuple, list)):
        return model(*batch)
    return model(batch)


def record_inputs(model: nn.Module, sites: list[Site], batches: Iterable) -> dict[str, Recorded]:
    """Run ``model`` (in eval mode, without gradients) on every batch and return a sample of what each
    site received; the model is left as it was."""
    generator = torch.Generator().manual_seed(0)
    recorders = []
    for site in sites:
        recorder = _Recorder(site.get(), generator)
        site.set(recorder)
        recorders.append((site, recorder))
    was_training = model.training
    model.eval()
    n_batches = 0
    try:
        with torch.no_grad():
            for batch in batches:
                call_model(model, batch)
                n_batches += 1
    finally:
        model.train(was_training)
        for site, recorder in recorders:
            site.set(recorder.original)
    if n_batches == 0:
        raise ValueError("calibration is empty: give at least one batch of model inputs (or calibration=None)")
    return {site.name: recorder.recorded() for site, recorder in recorders}
