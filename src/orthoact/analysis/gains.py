"""Gain propagation through depth (paper, Section 4: variance-preserving initialisation).

A plain deep MLP (Linear layers with the fan-in init W ~ N(0, 1/fan_in), each followed by the
activation; no normalisation, no residuals) is fed N(0, 1) inputs at init. Per layer we measure
the second moment of the activations and of the gradients backpropagated to the pre-activations,
and compare with the mean-field prediction: with pre-activations h_l ~ N(0, q_l),

    q_{l+1} = E[F(h_l)^2],    E[g_l^2] = E[g_{l+1}^2] * E[F'(h_l)^2],

where the Gaussian expectations come from each family's declaration (``gains_at``): exact for
Hermite (Gauss-Hermite quadrature, exact for polynomials), Fourier (frequencies scaled by sqrt(q))
and the tropical families (exact piecewise integration, slopes scaled by sqrt(q)); numerical
integration for the rational family and for GELU/ReLU/others.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from orthoact import declarations
from orthoact.activation import BasisActivation
from orthoact.basis import hermite_basis
from orthoact.families import Hermite
from orthoact.reference import integrated_gains
from orthoact.registry import create, family_names
from orthoact.targets import TARGETS

INITS = ("paper", "unit", "naive")


def gaussian_gains(activation, variance: float) -> tuple[float, float]:
    """(E[F(x)^2], E[F'(x)^2]) for x ~ N(0, variance), group 0 of an orthoact module, or a callable.

    Families give their own (exact where possible) formula through their declaration's ``gains_at``;
    anything else is integrated numerically.
    """
    if isinstance(activation, BasisActivation) and not activation.inputs.identity:
        forward, backward = integrated_gains(activation.spec, [t.detach()[:1] for t in activation.reference_tensors()],
                                             activation.inputs, activation.options, variance)
        return forward.item(), backward.item()
    if isinstance(activation, BasisActivation) and activation.spec.gains_at is not None:
        tensors = [t.detach() for t in activation.tensors()]
        return activation.spec.gains_at(*tensors, variance, **activation.options)
    sigma = math.sqrt(variance)
    x = torch.linspace(-12 * sigma, 12 * sigma, 200_001, dtype=torch.float64, requires_grad=True)
    y = activation(x)
    (dy,) = torch.autograd.grad(y.sum(), x)
    pdf = torch.exp(-0.5 * (x.detach() / sigma) ** 2) / (sigma * math.sqrt(2 * math.pi))
    return torch.trapezoid(y.detach() ** 2 * pdf, x.detach()).item(), torch.trapezoid(dy**2 * pdf, x.detach()).item()


def naive_hermite(degree: int) -> Hermite:
    """A Hermite module equal to the plain monomial series sum_k x^k (every coefficient 1)."""
    module = Hermite(degree, dtype=torch.float64, backend="reference")
    x = torch.linspace(-1, 1, degree + 1, dtype=torch.float64)
    basis = torch.stack(hermite_basis(x, degree), -1)
    target = sum(x**k for k in range(degree + 1))
    with torch.no_grad():
        module.coefficients.copy_(torch.linalg.solve(basis, target).unsqueeze(0))
    return module


def _int_degree(degree) -> int:
    try:
        return int(degree)
    except (TypeError, ValueError):
        raise ValueError(f"degree must be a positive int for init='naive', got {degree!r}") from None


def make_activation(family: str, degree: int | str | None, init: str):
    """An activation by family name ("gelu", "relu", ... or a basis family) and init."""
    if init not in INITS:
        raise ValueError(f"init must be one of {', '.join(INITS)}; got {init!r}")
    if family in family_names():
        if init == "naive":
            if family != "hermite":
                raise ValueError("init='naive' (plain monomial coefficients) exists for the hermite family only")
            return naive_hermite(3 if not degree else _int_degree(degree))
        spec = declarations.get(family)
        if init != "paper" and init not in spec.inits:
            raise ValueError(f"init={init!r} is not an init of {family} (its inits: {', '.join(spec.inits)})")
        kwargs = {"init": init} if init in spec.inits else {}
        return create(family if not degree else f"{family}:{degree}", dtype=torch.float64, backend="reference", **kwargs)
    if family in TARGETS:
        if init != "paper":
            raise ValueError(f"init={init!r} applies to the basis families, not to {family}")
        return TARGETS[family]
    raise ValueError(f"family must be one of {', '.join(family_names() + tuple(TARGETS))}; got {family!r}")


@dataclass
class GainTrace:
    activation_moments: list[float]  # measured E[a_l^2], l = 1..depth
    gradient_moments: list[float]  # measured E[(dL/dh_l)^2]
    predicted_activations: list[float]
    predicted_gradients: list[float]


def propagate(activation, depth: int = 64, width: int = 1024, batch: int = 256, seed: int = 0,
              dtype=torch.float64) -> GainTrace:
    """Measure and predict per-layer second moments in a deep plain MLP at init."""
    g = torch.Generator().manual_seed(seed)
    act = activation.to(dtype) if isinstance(activation, nn.Module) else activation
    x = torch.randn(batch, width, generator=g, dtype=dtype)
    acts, pre = [], []
    h_in = x
    with torch.no_grad():
        weights = [torch.randn(width, width, generator=g, dtype=dtype) / math.sqrt(width) for _ in range(depth)]
    for w in weights:
        h = (h_in @ w.T).requires_grad_()
        pre.append(h)
        with torch.enable_grad():
            a = act(h)
        acts.append(a)
        h_in = a.detach()
    # Backward with a unit-variance upstream gradient, layer by layer (no graph across layers).
    grad = torch.randn(batch, width, generator=g, dtype=dtype)
    grads = [None] * depth
    for layer in reversed(range(depth)):
        (gh,) = torch.autograd.grad(acts[layer], pre[layer], grad)
        grads[layer] = gh
        grad = gh @ weights[layer]
    with torch.no_grad():
        act_moments = [a.detach().square().mean().item() for a in acts]
        grad_moments = [gr.square().mean().item() for gr in grads]
    # Mean-field prediction.
    pred_a, chis = [], []
    q = x.square().mean().item()
    for _ in range(depth):
        if not math.isfinite(q) or q > 1e30:
            pred_a.append(math.inf)
            chis.append(math.inf)
            continue
        f, d = gaussian_gains(act, q)
        pred_a.append(f)
        chis.append(d)
        q = f
    pred_g = [0.0] * depth
    upstream = 1.0
    for layer in reversed(range(depth)):
        upstream = upstream * chis[layer]
        pred_g[layer] = upstream
    return GainTrace(act_moments, grad_moments, pred_a, pred_g)


def plot_trace(trace: GainTrace, path, title: str) -> None:
    from orthoact.analysis.plots import pyplot, save_figure

    plt = pyplot()
    layers = np.arange(1, len(trace.activation_moments) + 1)

    def clean(values):
        v = np.asarray(values, dtype=np.float64)
        return np.where(np.isfinite(v) & (v > 0), np.clip(v, 1e-60, 1e60), np.nan)

    series = [
        (clean(trace.activation_moments), "o-", "activations E[a²] (measured)", "C0"),
        (clean(trace.predicted_activations), "--", "activations, predicted from gains", "C0"),
        (clean(trace.gradient_moments), "s-", "gradients E[g²] (measured)", "C1"),
        (clean(trace.predicted_gradients), ":", "gradients, predicted from gains", "C1"),
    ]
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for values, style, label, color in series:
        ax.semilogy(layers, values, style, ms=3, lw=1.2, color=color, label=label)
    finite = np.concatenate([v[np.isfinite(v)] for v, *_ in series])
    if finite.size:
        ax.set_ylim(max(finite.min() / 10, 1e-60), min(finite.max() * 10, 1e60))
    measured = np.asarray(trace.activation_moments, dtype=np.float64)
    bad = np.flatnonzero(~np.isfinite(measured))
    if bad.size:
        ax.axvline(bad[0] + 1, color="C3", lw=1, ls="-.", label=f"measured overflows (inf/NaN) from layer {bad[0] + 1}")
    ax.axhspan(0.1, 10, color="C2", alpha=0.08)
    ax.set_xlabel("layer")
    ax.set_ylabel("second moment")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7)
    save_figure(fig, path)
