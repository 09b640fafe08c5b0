"""Swapping the activations of an existing (pretrained) model for fitted basis activations.

:func:`convert` finds every activation of the given kinds (``nn.GELU``, the Hugging Face
``transformers`` activation classes, or a function such as ``F.gelu`` stored as a module attribute
like ``intermediate_act_fn``), optionally records what each one receives on calibration batches,
and replaces each by a module of the chosen family fitted to it on its own recorded inputs.
:func:`distill` then trains the new activation parameters against the original model.

Real pretrained models need the calibration: their pre-activations are far from N(0, 1) (in one
transformer we probed, std about 1 but values from -17 to +25), and a polynomial fitted on a narrow
range fails outside it.
"""

from __future__ import annotations

import copy
import itertools
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm.auto import tqdm

from orthoact.fit import fit
from orthoact.modules import BasisActivation

__all__ = ["convert", "distill", "ConversionReport", "DEFAULT_TARGETS"]

#: Hugging Face transformers activation classes (matched by name, so transformers is optional).
HF_GELU_CLASSES = (
    "GELUActivation",
    "NewGELUActivation",
    "FastGELUActivation",
    "QuickGELUActivation",
    "GELUTanh",
    "PytorchGELUTanh",
    "AccurateGELUActivation",
    "ClippedGELUActivation",
)
DEFAULT_TARGETS = (nn.GELU, *HF_GELU_CLASSES, F.gelu)
MAX_RECORDED = 200_000  # values kept per activation site
PER_CALL = 20_000  # values sampled from one call


@dataclass
class SiteReport:
    name: str
    original: str
    recorded: int
    input_min: float
    input_max: float
    max_error: float
    rms_error: float
    max_derivative_error: float
    rms_derivative_error: float


@dataclass
class ConversionReport:
    family: str
    degree: int
    calibrated: bool
    sites: list[SiteReport] = field(default_factory=list)

    def __str__(self) -> str:
        head = f"converted {len(self.sites)} activation(s) to {self.family}-{self.degree}" + (
            " (fitted on recorded inputs)" if self.calibrated else " (fitted on the default domain)"
        )
        lines = [head, f"{'module':<48}{'original':<22}{'inputs':>9}{'min':>9}{'max':>9}{'max err':>10}{'rms err':>10}"]
        for s in self.sites:
            lines.append(
                f"{s.name:<48}{s.original:<22}{s.recorded:>9}{s.input_min:>9.3g}{s.input_max:>9.3g}"
                f"{s.max_error:>10.3g}{s.rms_error:>10.3g}"
            )
        return "\n".join(lines)


class _Recorder(nn.Module):
    """Stands in for an activation during calibration: records a sample of its inputs."""

    def __init__(self, original, generator: torch.Generator) -> None:
        super().__init__()
        self.original = original
        self.samples: list[Tensor] = []
        self.count = 0
        self.generator = generator

    def forward(self, x, *args, **kwargs):
        flat = x.detach().reshape(-1).float().cpu()
        if flat.numel() > PER_CALL:
            flat = flat[torch.randint(flat.numel(), (PER_CALL,), generator=self.generator)]
        self.samples.append(flat)
        self.count += x.numel()
        return self.original(x, *args, **kwargs)

    def recorded(self) -> Tensor:
        values = torch.cat(self.samples) if self.samples else torch.empty(0)
        if values.numel() > MAX_RECORDED:
            values = values[torch.randperm(values.numel(), generator=self.generator)[:MAX_RECORDED]]
        return values


def _matches(value, targets) -> bool:
    for t in targets:
        if isinstance(t, str):
            if isinstance(value, nn.Module) and type(value).__name__ == t:
                return True
        elif isinstance(t, type):
            if isinstance(value, t):
                return True
        elif value is t:
            return True
    return False


def _sites(model: nn.Module, targets) -> list[tuple[nn.Module, str, str]]:
    """(parent, attribute, qualified name) of every activation to replace.

    A matched module is not searched inside (HF's GELUActivation holds ``F.gelu`` itself).
    """
    found = []

    def visit(parent: nn.Module, prefix: str) -> None:
        if isinstance(parent, BasisActivation):
            return
        for attr, value in list(vars(parent).items()):
            if not attr.startswith("_") and callable(value) and not isinstance(value, (nn.Module, type)) and _matches(value, targets):
                found.append((parent, attr, f"{prefix}{attr}"))
        for attr, child in parent._modules.items():
            if child is None:
                continue
            if _matches(child, targets):
                found.append((parent, attr, f"{prefix}{attr}"))
            else:
                visit(child, f"{prefix}{attr}.")

    visit(model, "")
    return found


def _set(parent: nn.Module, attr: str, value) -> None:
    """setattr that also turns a submodule slot back into a plain (function) attribute."""
    if not isinstance(value, nn.Module) and attr in parent._modules:
        del parent._modules[attr]
    setattr(parent, attr, value)


def _call(model: nn.Module, batch):
    if isinstance(batch, Mapping):
        return model(**batch)
    if isinstance(batch, (tuple, list)):
        return model(*batch)
    return model(batch)


def _describe(targets) -> str:
    return ", ".join(t if isinstance(t, str) else getattr(t, "__name__", repr(t)) for t in targets)


def convert(
    model: nn.Module,
    family: str = "hermite",
    degree: int | None = None,
    *,
    targets=DEFAULT_TARGETS,
    calibration: Iterable | None = None,
    groups: int = 1,
    inplace: bool = False,
    strict: bool = True,
    **fit_kwargs,
) -> tuple[nn.Module, ConversionReport]:
    """Replace every activation of the given kinds by a fitted module of ``family``.

    Args:
        model: any ``nn.Module``.
        family: the basis family of the replacements. Default: ``"hermite"``
        degree: its degree. Default: the family's default
        targets: classes, class names (for optional libraries such as ``transformers``) or functions
            to replace. Default: ``nn.GELU``, the transformers GELU classes and ``F.gelu``
        calibration: iterable of model inputs (a tensor, a tuple of positional arguments, or a dict
            of keyword arguments); each replaced activation is fitted on its own recorded inputs.
            Default: ``None`` (fit on the family's default domain)
        groups: groups of the new modules (all groups start from the same fit). Default: ``1``
        inplace: modify ``model`` itself instead of a deep copy. Default: ``False``
        strict: raise when nothing matches. Default: ``True``
        fit_kwargs: passed to :func:`orthoact.fit` (``domain``, ``match_derivative``, ...).

    Returns:
        ``(model, report)``.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    if isinstance(targets, (type, str)) or callable(targets):
        targets = (targets,)
    model = model if inplace else copy.deepcopy(model)
    sites = _sites(model, targets)
    if not sites:
        if strict:
            raise ValueError(
                f"convert found no activation to replace in {type(model).__name__} (looked for {_describe(targets)}); "
                "pass targets=... to name the activation classes or functions, or strict=False to allow a no-op"
            )
        return model, ConversionReport(family, degree or 0, calibration is not None)

    recorded: dict[str, Tensor] = {}
    if calibration is not None:
        generator = torch.Generator().manual_seed(0)
        recorders = []
        for parent, attr, name in sites:
            recorder = _Recorder(getattr(parent, attr), generator)
            _set(parent, attr, recorder)
            recorders.append((parent, attr, name, recorder))
        was_training = model.training
        model.eval()
        n_batches = 0
        try:
            with torch.no_grad():
                for batch in calibration:
                    _call(model, batch)
                    n_batches += 1
        finally:
            model.train(was_training)
            for parent, attr, name, recorder in recorders:
                _set(parent, attr, recorder.original)
                recorded[name] = recorder.recorded()
        if n_batches == 0:
            raise ValueError("calibration is empty: give at least one batch of model inputs (or calibration=None)")

    report = ConversionReport(family, degree or 0, calibration is not None)
    for parent, attr, name in sites:
        original = getattr(parent, attr)
        samples = recorded.get(name)
        if samples is not None and samples.numel() == 0:
            raise ValueError(f"activation {name} received no input during calibration; it cannot be fitted on recorded data")
        module, fit_report = fit(original, family, degree, samples=samples, groups=groups, **fit_kwargs)
        report.degree = module.degree
        _set(parent, attr, module)
        lo, hi = fit_report.domain
        report.sites.append(
            SiteReport(
                name, type(original).__name__ if isinstance(original, nn.Module) else getattr(original, "__name__", "function"),
                int(samples.numel()) if samples is not None else 0, lo, hi, fit_report.max_error, fit_report.rms_error,
                fit_report.max_derivative_error, fit_report.rms_derivative_error,
            )
        )
    return model, report


def _select(output, key):
    if key is not None:
        return output[key]
    if isinstance(output, Tensor):
        return output
    if isinstance(output, Mapping) or hasattr(output, "keys"):
        for value in output.values():
            if isinstance(value, Tensor):
                return value
    if isinstance(output, (tuple, list)):
        for value in output:
            if isinstance(value, Tensor):
                return value
    raise TypeError(f"cannot find a tensor in the model output of type {type(output).__name__}; pass output=KEY")


def distill(
    student: nn.Module,
    teacher: nn.Module,
    batches: Iterable,
    *,
    steps: int = 100,
    lr: float = 1e-2,
    params: str = "activations",
    output=None,
    max_grad_norm: float | None = 1.0,
    restore_best: bool = True,
    progress: bool = True,
) -> list[float]:
    """Train ``student`` to reproduce ``teacher``'s outputs (mean squared error).

    Args:
        student: usually the model returned by :func:`convert`.
        teacher: the original model (kept frozen, in eval mode).
        batches: model inputs, as for ``convert``'s calibration; cycled for ``steps`` steps.
        steps: optimisation steps. Default: ``100``
        lr: Adam learning rate. Default: ``1e-2``
        params: ``"activations"`` (only the basis activations' parameters) or ``"all"``. Default: ``"activations"``
        output: key or index selecting the tensor in a dict/tuple output. Default: the first tensor
        max_grad_norm: gradient clipping (high-degree polynomials on wide input ranges have steep
            gradients); ``None`` disables it. Default: ``1.0``
        restore_best: end with the parameters of the step with the lowest loss. Default: ``True``
        progress: show a progress bar. Default: ``True``

    Returns:
        The loss of every step.
    """
    if params not in ("activations", "all"):
        raise ValueError(f"params must be 'activations' or 'all', got {params!r}")
    batches = list(batches)
    if not batches:
        raise ValueError("batches is empty: give at least one batch of model inputs")
    if steps < 1:
        raise ValueError(f"steps must be a positive int, got {steps!r}")
    if params == "activations":
        chosen = [p for m in student.modules() if isinstance(m, BasisActivation) for p in m.parameters()]
        if not chosen:
            raise ValueError("the student has no orthoact activation parameters to train; convert it first or pass params='all'")
    else:
        chosen = list(student.parameters())
    chosen_ids = {id(p) for p in chosen}
    frozen = [(p, p.requires_grad) for p in student.parameters()]
    for p in student.parameters():
        p.requires_grad_(id(p) in chosen_ids)
    modes = (student.training, teacher.training)
    student.eval()
    teacher.eval()
    optimizer = torch.optim.Adam(chosen, lr=lr)
    history: list[float] = []
    best = (math.inf, None)
    try:
        bar = tqdm(range(steps), desc="distill", disable=not progress)
        for _, batch in zip(bar, itertools.cycle(batches)):
            with torch.no_grad():
                target = _select(_call(teacher, batch), output).float()
            prediction = _select(_call(student, batch), output).float()
            loss = F.mse_loss(prediction, target)
            history.append(loss.item())
            if not math.isfinite(history[-1]):
                raise FloatingPointError(f"distillation diverged at step {len(history)} (loss {history[-1]}); lower lr")
            if restore_best and history[-1] < best[0]:
                best = (history[-1], [p.detach().clone() for p in chosen])
            optimizer.zero_grad()
            loss.backward()
            if max_grad_norm is not None:
                torch.nn.utils.clip_grad_norm_(chosen, max_grad_norm)
            optimizer.step()
            bar.set_postfix(loss=f"{history[-1]:.3g}")
        if restore_best and best[1] is not None:
            with torch.no_grad():
                for p, value in zip(chosen, best[1]):
                    p.copy_(value)
    finally:
        for p, flag in frozen:
            p.requires_grad_(flag)
        student.train(modes[0])
        teacher.train(modes[1])
    return history
