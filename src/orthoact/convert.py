"""Swapping the activations of an existing (pretrained) model for fitted basis activations.

:func:`convert` finds every activation of the given kinds (by name, ``"gelu"``, ``"silu"``, ``"relu"``,
``"tanh"``, ..., or by class or function: ``nn.GELU``, ``nn.SiLU``, the Hugging Face ``transformers``
activation classes, or a function such as ``F.gelu`` stored as a module attribute like
``intermediate_act_fn``), optionally records what each one receives on calibration batches, and
replaces each by a module of the chosen family fitted to it on its own recorded inputs, on the site's
device and in its dtype. :func:`distill` then trains the new activation parameters against the
original model. :func:`save_converted` / :func:`load_converted` store a converted model as a small
JSON description of its sites beside a ``safetensors`` file of its weights.

Real pretrained models need the calibration: their pre-activations are far from N(0, 1) (in one
transformer we probed, std about 1 but values from -17 to +25), and a polynomial fitted on a narrow
range fails outside it.
"""

from __future__ import annotations

import copy
import itertools
import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from orthoact import declarations
from orthoact._io import write_atomic
from orthoact._progress import progress as progress_bar
from orthoact.activation import BasisActivation
from orthoact.fit import fit

__all__ = ["convert", "distill", "ConversionReport", "DEFAULT_TARGETS", "TARGET_GROUPS", "save_converted",
           "load_converted", "converted_sites"]

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
#: What each activation name matches: torch classes and functions, and transformers classes by name.
TARGET_GROUPS = {
    "gelu": (nn.GELU, *HF_GELU_CLASSES, F.gelu),
    "silu": (nn.SiLU, "SiLUActivation", F.silu),
    "relu": (nn.ReLU, F.relu, torch.relu),
    "tanh": (nn.Tanh, torch.tanh, F.tanh),
    "sigmoid": (nn.Sigmoid, torch.sigmoid, F.sigmoid),
    "mish": (nn.Mish, "MishActivation", F.mish),
    "leaky_relu": (nn.LeakyReLU, F.leaky_relu),
    "elu": (nn.ELU, F.elu),
    "softplus": (nn.Softplus, F.softplus),
}
TARGET_GROUPS["swish"] = TARGET_GROUPS["silu"]
DEFAULT_TARGETS = TARGET_GROUPS["gelu"]
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
    degree: object
    calibrated: bool
    sites: list[SiteReport] = field(default_factory=list)

    @property
    def label(self) -> str:
        return f"{self.family}-{declarations.get(self.family).degree_text(self.degree)}"

    def __str__(self) -> str:
        head = f"converted {len(self.sites)} activation(s) to {self.label}" + (
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
        self.site_device, self.site_dtype = x.device, x.dtype
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
        values.site_device = getattr(self, "site_device", None)  # where the activation ran, and in what dtype
        values.site_dtype = getattr(self, "site_dtype", None)
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


def _expand_targets(targets) -> tuple:
    """Classes, class names and functions to match; activation names (``"silu"``) expand to their group."""
    if isinstance(targets, (type, str)) or callable(targets):
        targets = (targets,)
    out = []
    for t in targets:
        key = t.strip().lower().replace("-", "_") if isinstance(t, str) else None
        out.extend(TARGET_GROUPS[key] if key in TARGET_GROUPS else (t,))
    return tuple(out)


def _placement(model: nn.Module, parent: nn.Module, recorded: Tensor | None) -> dict:
    """Device and dtype for a replacement: those of what the activation received during calibration,
    else of the tensors around it (its parent's, else the model's), else PyTorch's defaults."""
    if recorded is not None and recorded.numel() and getattr(recorded, "site_dtype", None) is not None:
        return {"device": recorded.site_device, "dtype": recorded.site_dtype}
    for owner in (parent, model):
        for t in itertools.chain(owner.parameters(), owner.buffers()):
            if t.is_floating_point():
                return {"device": t.device, "dtype": t.dtype}
    return {}

def convert(
    model: nn.Module,
    family: str = "hermite",
    degree=None,
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
        degree: its degree (a rational function's ``(numerator, denominator)``). Default: the family's default
        targets: activation names (``"gelu"``, ``"silu"``/``"swish"``, ``"relu"``, ``"tanh"``,
            ``"sigmoid"``, ``"mish"``, ``"leaky_relu"``, ``"elu"``, ``"softplus"``), classes, class names
            (for optional libraries such as ``transformers``) or functions to replace.
            Default: ``"gelu"`` (``nn.GELU``, the transformers GELU classes and ``F.gelu``)
        calibration: iterable of model inputs (a tensor, a tuple of positional arguments, or a dict
            of keyword arguments); each replaced activation is fitted on its own recorded inputs.
            Default: ``None`` (fit on the family's default domain)
        groups: groups of the new modules (all groups start from the same fit). Default: ``1``
        inplace: modify ``model`` itself instead of a deep copy. Default: ``False``
        strict: raise when nothing matches. Default: ``True``
        fit_kwargs: passed to :func:`orthoact.fit` (``domain``, ``match_derivative``, ``version``, ...).
            The replacements take the device and dtype of each site (of the inputs recorded there, else
            of the surrounding parameters); ``dtype=``/``device=`` here override that.

    Returns:
        ``(model, report)``.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    spec = declarations.get(family)
    targets = _expand_targets(targets)
    model = model if inplace else copy.deepcopy(model)
    sites = _sites(model, targets)
    if not sites:
        if strict:
            raise ValueError(
                f"convert found no activation to replace in {type(model).__name__} (looked for {_describe(targets)}); "
                "pass targets=... to name the activation classes or functions, or strict=False to allow a no-op"
            )
        return model, ConversionReport(family, degree if degree is not None else spec.default_degree, calibration is not None)

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

    report = ConversionReport(family, degree if degree is not None else spec.default_degree, calibration is not None)
    for parent, attr, name in sites:
        original = getattr(parent, attr)
        samples = recorded.get(name)
        if samples is not None and samples.numel() == 0:
            raise ValueError(f"activation {name} received no input during calibration; it cannot be fitted on recorded data")
        placement = {**_placement(model, parent, samples), **{k: fit_kwargs[k] for k in ("device", "dtype") if k in fit_kwargs}}
        kwargs = {k: v for k, v in fit_kwargs.items() if k not in ("device", "dtype")}
        module, fit_report = fit(original, family, degree, samples=samples, groups=groups, **placement, **kwargs)
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
    if _is_transformers_model(model):  # record the conversion in its config, for save/from_pretrained
        from orthoact.integrations.transformers import record_conversion

        record_conversion(model, targets, family, report.degree)
    return model, report


def _is_transformers_model(model: nn.Module) -> bool:
    """A ``transformers`` PreTrainedModel (checked by name: transformers is optional)."""
    return hasattr(model, "config") and any(c.__name__ == "PreTrainedModel" for c in type(model).__mro__)


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
        bar = progress_bar(total=steps, desc="distill", disable=not progress)
        for _, batch in zip(range(steps), itertools.cycle(batches)):
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
            bar.update(1)
        bar.close()
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


# -- saving and loading converted models ------------------------------------------------------------

FORMAT = "orthoact-conversion"
FORMAT_VERSION = 1
DESCRIPTION_FILE = "orthoact.json"
WEIGHTS_FILE = "model.safetensors"


def converted_sites(model: nn.Module) -> dict[str, dict]:
    """``{qualified name: {"family": ..., "config": ...}}`` of every orthoact activation in ``model``:
    everything needed to rebuild their structure (the values live in the state dict)."""
    return {name: {"family": m.family, "config": m.config()}
            for name, m in model.named_modules() if isinstance(m, BasisActivation)}


def apply_sites(model: nn.Module, sites: Mapping[str, Mapping]) -> nn.Module:
    """Put a fresh orthoact activation of the recorded structure at every site of ``model`` (in place),
    on the device and in the dtype of the tensors around it. A site the model does not have is refused."""
    _check_sites_exist(model, sites)
    for name, entry in sites.items():
        parent_name, _, attr = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        spec = declarations.get(entry["family"])
        module = spec.module.from_config(dict(entry["config"]), **_placement(model, parent, None))
        _set(parent, attr, module)
    return model


def save_converted(model: nn.Module, folder) -> Path:
    """Save a converted model as ``folder/orthoact.json`` (which sites were converted, to what) and
    ``folder/model.safetensors`` (all weights). :func:`load_converted` rebuilds it from the original
    architecture without calibration."""
    from safetensors.torch import save_model

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    sites = converted_sites(model)
    if not sites:
        raise ValueError(f"{type(model).__name__} has no orthoact activation: there is no conversion to save")
    description = {"format": FORMAT, "version": FORMAT_VERSION, "model_class": type(model).__qualname__, "sites": sites}
    # Each file is written beside its target and renamed over it, so an interrupted save never
    # leaves a truncated file; the description goes last, as the mark of a complete save.
    write_atomic(folder / WEIGHTS_FILE, lambda tmp: save_model(model, tmp))
    write_atomic(folder / DESCRIPTION_FILE, lambda tmp: Path(tmp).write_text(json.dumps(description, indent=2)))
    return folder


def load_converted(model: nn.Module, folder) -> nn.Module:
    """Rebuild a converted model: ``model`` is the original architecture (fresh or pretrained); its
    recorded sites get their orthoact activations back, then every weight is loaded from the
    safetensors file. Sites or weights that do not match the model are refused with a message;
    nothing is loaded partially."""
    from safetensors.torch import load_file

    folder = Path(folder)
    path = folder / DESCRIPTION_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{folder} holds no {DESCRIPTION_FILE}: not a model saved by orthoact.save_converted")
    description = json.loads(path.read_text())
    if description.get("format") != FORMAT or description.get("version") != FORMAT_VERSION:
        raise ValueError(f"{path} is not an orthoact conversion of version {FORMAT_VERSION} "
                         f"(format {description.get('format')!r}, version {description.get('version')!r})")
    state = load_file(str(folder / WEIGHTS_FILE))
    sites = description["sites"]
    _check_sites_exist(model, sites)
    # The keys the converted model will have, computed before anything is changed.
    current = model.state_dict(keep_vars=True)
    expected = {k for k in current if not any(k.startswith(site + ".") for site in sites)}
    expected |= {f"{site}.{p}" for site, entry in sites.items() for p in declarations.get(entry["family"]).param_names}
    missing = sorted(k for k in expected - set(state) if not _tied(current, k, state))
    unexpected = sorted(set(state) - expected)
    if missing or unexpected:
        raise ValueError(
            f"the weights in {folder} do not match this {type(model).__name__} converted as recorded "
            f"(missing {missing[:5]}{'...' if len(missing) > 5 else ''}, unexpected {unexpected[:5]}"
            f"{'...' if len(unexpected) > 5 else ''}); nothing was loaded"
        )
    apply_sites(model, sites)
    model.load_state_dict(state, strict=False)  # every key checked above; tied copies share storage
    return model


def _check_sites_exist(model: nn.Module, sites) -> None:
    for name in sites:
        parent_name, _, attr = name.rpartition(".")
        try:
            parent = model.get_submodule(parent_name) if parent_name else model
        except AttributeError:
            parent = None
        if parent is None or not callable(getattr(parent, attr, None)):
            raise ValueError(
                f"the saved conversion has an activation at {name!r}, but this {type(model).__name__} has no activation "
                "there: the checkpoint was converted from another architecture (nothing was loaded)"
            )


def _tied(tensors: Mapping[str, Tensor], key: str, state: Mapping[str, Tensor]) -> bool:
    """Whether ``key`` is a tensor shared with one that ``state`` holds (safetensors stores it once)."""
    target = tensors.get(key)
    return target is not None and any(other != key and tensors[other] is target and other in state for other in tensors)
