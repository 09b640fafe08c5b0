r"""Fitting an activation family to a known activation ("Hermite interpolation", paper Section 4).

Hermite and Fourier with fixed integer frequencies are linear in their parameters, so stacking
value rows :math:`F(x_i) \approx f(x_i)` and derivative rows :math:`F'(x_i) \approx f'(x_i)` gives
an ordinary least-squares problem, solved in float64 in milliseconds and deterministically.
Fourier with learned frequencies starts from that solution and is refined by a bounded L-BFGS run.
Tropical polynomials start from the supporting lines of the target with the fixed slopes (the
best convex minorant) and tropical rational functions from the piecewise-linear interpolant of the
target split into a convex minus a convex part; both are refined by a bounded number of Adam steps.

Samples come from a domain (default :math:`[-\sqrt n, \sqrt n]` as in the paper) or from recorded
values (calibration); recorded values are represented by their quantiles, so the fit is weighted
by their density.

    >>> module, report = orthoact.fit("gelu", "hermite", 8)
    >>> report.max_error < 2e-3
    True
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor, nn

from orthoact import _validation as V
from orthoact.basis import hermite_basis
from orthoact.registry import FAMILIES, create
from orthoact.targets import TARGETS

__all__ = ["fit", "FitReport", "TARGETS", "resolve_target"]

N_GRID = 2049  # sample points on a domain
N_QUANTILES = 4097  # points representing recorded samples
N_REPORT = 10001  # evaluation points of the error report on a domain


@dataclass
class FitReport:
    """Errors of a fit, evaluated on a dense grid of the domain (or on the recorded samples)."""

    target: str
    family: str
    degree: int
    domain: tuple[float, float]
    max_error: float
    rms_error: float
    max_derivative_error: float
    rms_derivative_error: float
    seconds: float
    evaluated_on: str = "domain"
    extra: dict = field(default_factory=dict)

    def __str__(self) -> str:
        lo, hi = self.domain
        return (
            f"{self.family}-{self.degree} fit of {self.target} on [{lo:.3g}, {hi:.3g}] ({self.evaluated_on}): "
            f"max |F-f| {self.max_error:.3g}, rms {self.rms_error:.3g}; "
            f"max |F'-f'| {self.max_derivative_error:.3g}, rms {self.rms_derivative_error:.3g}; "
            f"{self.seconds * 1e3:.1f} ms"
        )


def resolve_target(target) -> tuple[Callable[[Tensor], Tensor], str]:
    """A callable on tensors and a display name, from a name, a function or a module."""
    if isinstance(target, str):
        key = target.strip().lower().replace("-", "_")
        if key not in TARGETS:
            raise ValueError(f"unknown target activation {target!r}; known: {', '.join(TARGETS)}")
        return TARGETS[key], key
    if isinstance(target, nn.Module):
        return target, type(target).__name__
    if callable(target):
        return target, getattr(target, "__name__", type(target).__name__)
    raise TypeError(f"target must be an activation name, a callable or an nn.Module, got {type(target).__name__}")


def _values_and_derivatives(fn: Callable[[Tensor], Tensor], x: Tensor) -> tuple[Tensor, Tensor]:
    """f(x) and f'(x) by autograd, in float64 (the target is evaluated in float64 when it allows)."""
    x = x.detach().clone().requires_grad_()
    with torch.enable_grad():
        try:
            y = fn(x)
        except RuntimeError:  # a module with float32 weights: evaluate in float32
            xf = x.detach().float().requires_grad_()
            y = fn(xf)
            (d,) = torch.autograd.grad(y.sum(), xf, allow_unused=True)
            d = torch.zeros_like(xf) if d is None else d
            return y.detach().double(), d.double()
        (d,) = torch.autograd.grad(y.sum(), x, allow_unused=True)
    d = torch.zeros_like(x) if d is None else d
    return y.detach().double(), d.detach().double()


def _points(degree: int, samples, domain, weights):
    """Sample points, their weights and the report domain."""
    if samples is not None:
        s = torch.as_tensor(samples).detach().reshape(-1).double().cpu()
        s = s[torch.isfinite(s)]
        if s.numel() == 0:
            raise ValueError("samples must contain at least one finite value")
        if weights is not None:
            raise ValueError("weights cannot be combined with samples: recorded samples are weighted by their density")
        q = torch.linspace(0, 1, N_QUANTILES, dtype=torch.float64)
        x = torch.quantile(s, q) if s.numel() > 1 else s.repeat(2)
        return x, torch.ones_like(x), (s.min().item(), s.max().item()), s
    if domain is None:
        domain = (-math.sqrt(degree), math.sqrt(degree))
    try:
        lo, hi = (float(v) for v in domain)
    except (TypeError, ValueError):
        raise ValueError(f"domain must be a pair (low, high), got {domain!r}") from None
    if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
        raise ValueError(f"domain must be a finite interval with low < high, got {domain!r}")
    x = torch.linspace(lo, hi, N_GRID, dtype=torch.float64)
    if weights is None:
        w = torch.ones_like(x)
    elif callable(weights):
        w = torch.as_tensor(weights(x), dtype=torch.float64)
    else:
        w = torch.as_tensor(weights, dtype=torch.float64)
        if w.shape != x.shape:
            raise ValueError(f"weights must have one value per sample point ({N_GRID}), got shape {tuple(w.shape)}")
    if (w < 0).any() or not torch.isfinite(w).all():
        raise ValueError("weights must be finite and non-negative")
    return x, w, (lo, hi), None


def _lstsq(rows: Tensor, rhs: Tensor, w: Tensor) -> Tensor:
    sw = w.sqrt().unsqueeze(-1)
    return torch.linalg.lstsq(rows * sw, rhs.unsqueeze(-1) * sw, driver="gelsd").solution.squeeze(-1)


def _fit_hermite(x, w, f, df, degree, match_derivative):
    basis = torch.stack(hermite_basis(x, degree), dim=-1)  # (m, n+1)
    rows, rhs, weights = [basis], [f], [w]
    if match_derivative:
        deriv = torch.cat([torch.zeros_like(x).unsqueeze(-1), basis[:, :-1]], dim=-1)
        rows.append(deriv)
        rhs.append(df)
        weights.append(w)
    return {"coefficients": _lstsq(torch.cat(rows), torch.cat(rhs), torch.cat(weights))}


def _fit_fourier_linear(x, w, f, df, degree, match_derivative):
    k = torch.arange(1, degree + 1, dtype=torch.float64)
    kx = x.unsqueeze(-1) * k
    cos, sin = torch.cos(kx), torch.sin(kx)
    ones = torch.ones_like(x).unsqueeze(-1)
    rows, rhs, weights = [torch.cat([ones, cos, sin], -1)], [f], [w]
    if match_derivative:
        rows.append(torch.cat([torch.zeros_like(ones), -k * sin, k * cos], -1))
        rhs.append(df)
        weights.append(w)
    sol = _lstsq(torch.cat(rows), torch.cat(rhs), torch.cat(weights))
    alpha, beta = sol[1 : degree + 1], sol[degree + 1 :]
    # b + sum (c_k/k!) cos(kx - phi_k) = b + sum (c_k/k!)(cos phi_k cos kx + sin phi_k sin kx)
    factorial = torch.tensor([math.factorial(j) for j in range(1, degree + 1)], dtype=torch.float64)
    return {
        "bias": sol[:1],
        "coefficients": factorial * torch.sqrt(alpha**2 + beta**2),
        "frequencies": k,
        "phases": torch.atan2(beta, alpha),
    }


def _tropical_rational_start(x, f, degree):
    """Piecewise-linear interpolant of f split into convex minus convex, each a max of <= n+1 lines."""
    lo, hi = x.min().item(), x.max().item()
    knots = torch.linspace(lo, hi, 2 * degree + 2, dtype=torch.float64)
    fk = torch.from_numpy(np.interp(knots.numpy(), x.numpy(), f.numpy()))
    slopes = (fk[1:] - fk[:-1]) / (knots[1:] - knots[:-1])
    change = slopes[1:] - slopes[:-1]  # at interior knots
    interior = knots[1:-1]
    pos = [(c.item(), t.item()) for c, t in zip(change, interior) if c > 0]
    neg = [(-c.item(), t.item()) for c, t in zip(change, interior) if c < 0]
    # At most n slope changes fit in each max: keep the largest.
    pos = sorted(sorted(pos, reverse=True)[:degree], key=lambda p: p[1])
    neg = sorted(sorted(neg, reverse=True)[:degree], key=lambda p: p[1])

    def lines(changes, base_slope, base_offset):
        s, o = [base_slope], [base_offset]
        for c, t in changes:  # adding c * (x - t) after knot t
            s.append(s[-1] + c)
            o.append(o[-1] - c * t)
        while len(s) < degree + 1:  # duplicates of the last line change nothing
            s.append(s[-1])
            o.append(o[-1])
        return torch.tensor(s, dtype=torch.float64), torch.tensor(o, dtype=torch.float64)

    s0 = slopes[0].item()
    p, a = lines(pos, s0, fk[0].item() - s0 * lo)
    q, b = lines(neg, 0.0, 0.0)
    return {"slopes_num": p, "offsets_num": a, "slopes_den": q, "offsets_den": b}


def _tropical_start(x, f, degree):
    """Supporting lines of f with the fixed slopes: the best convex minorant, then offsets."""
    scale = math.sqrt(2.0) / degree
    k = torch.arange(degree + 1, dtype=torch.float64)
    # scale * (k x + a_k) <= f(x) for all samples: a_k = min_i (f(x_i)/scale - k x_i)
    return {"offsets": (f.unsqueeze(-1) / scale - x.unsqueeze(-1) * k).min(0).values}


def _refine(module, x, w, f, df, match_derivative, steps, optimizer="adam", lr=0.01):
    """A bounded number of optimisation steps on the weighted value (+ derivative) squared error."""
    xg = x.clone().requires_grad_()
    params = [p for p in module.parameters() if p.requires_grad]
    if not params or steps <= 0:
        return

    def loss_fn():
        y = module(xg)
        loss = (w * (y - f) ** 2).sum() / w.sum()
        if match_derivative:
            (dy,) = torch.autograd.grad(y.sum(), xg, create_graph=True)
            loss = loss + (w * (dy - df) ** 2).sum() / w.sum()
        return loss

    best = (loss_fn().item(), [p.detach().clone() for p in params])
    if optimizer == "lbfgs":
        opt = torch.optim.LBFGS(params, lr=1.0, max_iter=steps, line_search_fn="strong_wolfe")

        def closure():
            opt.zero_grad()
            loss = loss_fn()
            loss.backward()
            return loss

        opt.step(closure)
    else:
        opt = torch.optim.Adam(params, lr=lr)
        for _ in range(steps):
            opt.zero_grad()
            loss = loss_fn()
            if loss.item() < best[0]:
                best = (loss.item(), [p.detach().clone() for p in params])
            loss.backward()
            opt.step()
    final = loss_fn().item()
    if not math.isfinite(final) or final > best[0]:
        with torch.no_grad():
            for p, v in zip(params, best[1]):
                p.copy_(v)


def _evaluate(module, fn, x_eval) -> dict[str, float]:
    f, df = _values_and_derivatives(fn, x_eval)
    xg = x_eval.clone().requires_grad_()
    with torch.enable_grad():
        y = module.double()(xg)
        (dy,) = torch.autograd.grad(y.sum(), xg)
    err, derr = (y.detach() - f).abs(), (dy - df).abs()
    return {
        "max_error": err.max().item(),
        "rms_error": err.square().mean().sqrt().item(),
        "max_derivative_error": derr.max().item(),
        "rms_derivative_error": derr.square().mean().sqrt().item(),
    }


def fit(
    target,
    family: str = "hermite",
    degree: int | None = None,
    *,
    samples: Tensor | None = None,
    domain: tuple[float, float] | None = None,
    weights=None,
    match_derivative: bool = True,
    refine_steps: int | None = None,
    **module_kwargs,
) -> tuple[nn.Module, FitReport]:
    r"""Fit a module of ``family`` to ``target`` in value (and derivative).

    Args:
        target: an activation name (``"gelu"``, ``"silu"``, ``"relu"``, ``"tanh"``, ``"sigmoid"``,
            ``"mish"``, ``"leaky_relu"``, ``"elu"``, ``"softplus"``, ``"gelu_tanh"``), a callable on
            tensors or an ``nn.Module``.
        family: ``"hermite"``, ``"fourier"``, ``"tropical"`` or ``"tropical_rational"``. Default: ``"hermite"``
        degree: the family's degree. Default: the family's default degree
        samples: recorded inputs (calibration); the fit follows their distribution. Default: ``None``
        domain: ``(low, high)`` sampled uniformly when no samples are given.
            Default: :math:`[-\sqrt n, \sqrt n]`
        weights: per-point weights on the domain grid (a tensor of 2049 values or a callable of x).
            Default: uniform
        match_derivative: also fit :math:`F' \approx f'` (derivative of the target by autograd).
            Default: ``True``
        refine_steps: optimisation steps after the closed-form start (Fourier with learned
            frequencies: L-BFGS iterations; tropical families: Adam steps). Default: 40 / 300
        module_kwargs: passed to the module (``groups``, ``channel_dim``, ``learn_frequencies``,
            ``backend``, ``dtype``, ...); every group gets the fitted parameters.

    Returns:
        ``(module, report)``: the fitted module and a :class:`FitReport` with the max and RMS error
        of the value and the derivative on the domain (or on the samples).
    """
    start = time.perf_counter()
    fn, name = resolve_target(target)
    if family not in FAMILIES:
        raise ValueError(f"family must be one of {', '.join(map(repr, FAMILIES))}; got {family!r}")
    if degree is None:
        degree = create(family).degree
    degree = V.check_positive_int("degree", degree)
    if module_kwargs.get("init", "paper") != "paper":
        raise ValueError("fit sets the parameters itself: do not pass init")
    module_kwargs.pop("init", None)
    x, w, dom, recorded = _points(degree, samples, domain, weights)
    f, df = _values_and_derivatives(fn, x)

    dtype = module_kwargs.pop("dtype", None)
    module = create(family, degree=degree, dtype=torch.float64, **module_kwargs)
    if family == "hermite":
        values = _fit_hermite(x, w, f, df, degree, match_derivative)
    elif family == "fourier":
        values = _fit_fourier_linear(x, w, f, df, degree, match_derivative)
    elif family == "tropical":
        values = _tropical_start(x, f, degree)
    else:
        values = _tropical_rational_start(x, f, degree)
    with torch.no_grad():
        for pname, v in values.items():
            getattr(module, pname).copy_(v.expand_as(getattr(module, pname)))
    backend = module.backend
    module.backend = "reference"  # the refinement differentiates through F'
    sub = slice(None, None, 4)  # refine on a quarter of the points: same optimum, 4x cheaper steps
    xs, ws, fs, dfs = x[sub], w[sub], f[sub], df[sub]
    if family == "fourier" and module.learn_frequencies:
        _refine(module, xs, ws, fs, dfs, match_derivative, 40 if refine_steps is None else refine_steps, "lbfgs")
    elif family == "tropical":
        # F' is piecewise constant in the offsets (zero gradient): refine the values only.
        _refine(module, xs, ws, fs, dfs, False, 300 if refine_steps is None else refine_steps, "adam")
    elif family == "tropical_rational":
        _refine(module, xs, ws, fs, dfs, match_derivative, 300 if refine_steps is None else refine_steps, "adam")
    module.backend = backend

    x_eval = recorded if recorded is not None else torch.linspace(dom[0], dom[1], N_REPORT, dtype=torch.float64)
    if x_eval.numel() > 200_000:
        x_eval = x_eval[torch.randperm(x_eval.numel(), generator=torch.Generator().manual_seed(0))[:200_000]]
    errors = _evaluate(module, fn, x_eval)
    module = module.to(dtype or torch.get_default_dtype())
    report = FitReport(name, family, degree, dom, **errors, seconds=time.perf_counter() - start,
                       evaluated_on="samples" if recorded is not None else "domain")
    return module, report
