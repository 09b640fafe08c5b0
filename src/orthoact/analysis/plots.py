"""Plots of learned activations (matplotlib, PNG or SVG by the file suffix)."""

from __future__ import annotations

import math
from collections.abc import Iterable
from pathlib import Path

import torch
from torch import Tensor, nn

from orthoact import reference
from orthoact._errors import MissingDependency
from orthoact.activation import BasisActivation
from orthoact.targets import TARGETS


def pyplot():
    """matplotlib's pyplot on the non-interactive Agg backend (an error naming the extra if absent)."""
    try:
        import matplotlib

        matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt
    except ImportError:
        raise MissingDependency("plotting needs matplotlib: pip install 'orthoact[plot]'") from None
    return plt


def save_figure(fig, path) -> Path:
    """Write a figure (PNG or SVG by the suffix), creating the folder, and close it."""
    plt = pyplot()
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def activation_modules(model_or_modules) -> list[tuple[str, BasisActivation]]:
    """(name, module) of every orthoact activation in a model, a module or a list of modules."""
    if isinstance(model_or_modules, BasisActivation):
        return [(type(model_or_modules).__name__, model_or_modules)]
    if isinstance(model_or_modules, nn.Module):
        return [(n or "model", m) for n, m in model_or_modules.named_modules() if isinstance(m, BasisActivation)]
    out = []
    for i, m in enumerate(model_or_modules):
        if not isinstance(m, BasisActivation):
            raise TypeError(f"expected orthoact activation modules, got {type(m).__name__} at index {i}")
        out.append((f"{i}: {type(m).__name__}", m))
    return out


def curves(module: BasisActivation, x: Tensor, group: int) -> tuple[Tensor, Tensor]:
    """F and F' of one group of ``module`` on ``x``, in float64 on the reference formula."""
    rows = [t.detach().double().cpu()[group : group + 1] for t in module.reference_tensors()]
    xg = x.clone().requires_grad_()
    with torch.enable_grad():
        y = reference.evaluate(module.spec, xg, rows, inputs=module.inputs, **module.options)
        (dy,) = torch.autograd.grad(y.sum(), xg)
    return y.detach(), dy


def record_inputs(model: nn.Module, modules, inputs: Iterable) -> dict[int, Tensor]:
    """Inputs each activation module received on ``inputs`` batches (forward pre-hooks)."""
    from orthoact.conversion import call_model

    seen: dict[int, list[Tensor]] = {id(m): [] for _, m in modules}
    def keep(module, args):
        seen[id(module)].append(args[0].detach().reshape(-1).float().cpu()[:200_000])

    handles = [m.register_forward_pre_hook(keep) for _, m in modules]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for batch in inputs:
                call_model(model, batch)
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    return {k: torch.cat(v) for k, v in seen.items() if v}


def plot_activations(
    model_or_modules,
    path,
    *,
    inputs: Iterable | None = None,
    reference: str | None = "gelu",
    max_groups: int = 4,
    x_range: tuple[float, float] | None = None,
) -> Path:
    """One panel per activation module (and per group, up to ``max_groups``): the learned function
    and its derivative, the ``reference`` activation dotted, and, when ``inputs`` (model input
    batches) are given, a histogram of the values each module actually received.
    """
    modules = activation_modules(model_or_modules)
    if not modules:
        raise ValueError("no orthoact activation modules to plot")
    recorded = {}
    if inputs is not None:
        if not isinstance(model_or_modules, nn.Module):
            raise ValueError("inputs need the model itself (to run it), not a list of modules")
        recorded = record_inputs(model_or_modules, modules, inputs)
    panels = [
        (name if m.groups == 1 else f"{name} [group {g}]", m, g, recorded.get(id(m)))
        for name, m in modules
        for g in range(min(m.groups, max_groups))
    ]
    return plot_panels(panels, path, reference=reference, x_range=x_range)


def plot_panels(panels, path, *, reference: str | None = "gelu", x_range=None, cols: int = 4) -> Path:
    """Draw ``(title, module, group, recorded inputs or None)`` panels into one figure."""
    plt = pyplot()
    if reference is not None and reference not in TARGETS:
        raise ValueError(f"reference must be one of {', '.join(TARGETS)} or None, got {reference!r}")
    cols = min(cols, len(panels))
    rows = math.ceil(len(panels) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.4 * rows), squeeze=False)
    for ax, (title, module, group, values) in zip(axes.flat, panels):
        if x_range is not None:
            lo, hi = x_range
        elif values is not None and values.numel():
            lo, hi = torch.quantile(values[:100_000], torch.tensor([0.001, 0.999])).tolist()
            pad = 0.1 * (hi - lo) + 1e-3
            lo, hi = min(lo - pad, -3.0), max(hi + pad, 3.0)
        else:
            lo, hi = -4.0, 4.0
        x = torch.linspace(lo, hi, 801, dtype=torch.float64)
        y, dy = curves(module, x, group)
        ax.plot(x, y, color="C0", lw=2, label="F")
        ax.plot(x, dy, color="C1", lw=1.2, label="F'")
        if reference is not None:
            ax.plot(x, TARGETS[reference](x), color="k", ls=":", lw=1.2, label=reference)
        if values is not None and values.numel():
            twin = ax.twinx()
            twin.hist(values.clamp(lo, hi).numpy(), bins=80, color="0.6", alpha=0.35, density=True)
            twin.set_yticks([])
        ax.set_title(title if len(title) < 48 else "..." + title[-45:], fontsize=9)
        ax.axhline(0, color="0.85", lw=0.8, zorder=0)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=8, loc="upper left")
    return save_figure(fig, path)


def plot_fit(module: BasisActivation, target, domain: tuple[float, float], path) -> Path:
    """Target vs fitted module and their derivatives on ``domain`` (and 50% beyond it, shaded)."""
    from orthoact.fit import _values_and_derivatives, resolve_target

    plt = pyplot()
    fn, name = resolve_target(target)
    lo, hi = domain
    pad = 0.5 * (hi - lo)
    x = torch.linspace(lo - pad, hi + pad, 1001, dtype=torch.float64)
    f, df = _values_and_derivatives(fn, x)
    y, dy = curves(module, x, 0)
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.8))
    for ax, target_curve, fit_curve, label in ((a, f, y, "value"), (b, df, dy, "derivative")):
        ax.axvspan(lo, hi, color="C2", alpha=0.08, label="fitted domain")
        ax.plot(x, target_curve, "k:", lw=1.5, label=name)
        ax.plot(x, fit_curve, color="C0", lw=2, label=module.label())
        ax.set_title(label)
        ax.set_ylim(target_curve.min().item() - 1, target_curve.max().item() + 1)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return save_figure(fig, path)
