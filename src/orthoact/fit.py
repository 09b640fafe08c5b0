r"""Fitting an activation family to a known activation ("Hermite interpolation", paper Section 4).

Each family declares a closed-form start (:attr:`orthoact.declarations.FamilySpec.fit_start`): Hermite and
Fourier with fixed integer frequencies are linear in their parameters, so stacking value rows
:math:`F(x_i) \approx f(x_i)` and derivative rows :math:`F'(x_i) \approx f'(x_i)` gives an ordinary
least-squares problem, solved in float64 in milliseconds and deterministically. Tropical polynomials
start from the supporting lines of the target with the fixed slopes (the best convex minorant),
tropical rational functions from the piecewise-linear interpolant of the target split into a convex
minus a convex part, rational functions from the linearised Padé least squares. Families that
declare a refinement (Fourier with learned frequencies, the tropical and rational families) are then
optimised for a bounded number of steps on the reference formula.

The solvers here depend only on the declarations and the basis math (no module, no registry), so a
module's ``init="gelu"`` uses them directly.

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

import torch
from torch import Tensor, nn

from orthoact import declarations, reference
from orthoact.declarations import FamilySpec
from orthoact.inputs import InputMap, parse_domain
from orthoact.targets import TARGETS, lookup

__all__ = ["fit", "fit_parameters", "fit_errors", "default_domain", "FitReport", "TARGETS", "resolve_target"]

N_GRID = 2049  # sample points on a domain
N_QUANTILES = 4097  # points representing recorded samples
N_REPORT = 10001  # evaluation points of the error report on a domain


@dataclass
class FitReport:
    """Errors of a fit, evaluated on a dense grid of the domain (or on the recorded samples)."""

    target: str
    family: str
    degree: object
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
        degree = "/".join(map(str, self.degree)) if isinstance(self.degree, tuple) else self.degree
        return (
            f"{self.family}-{degree} fit of {self.target} on [{lo:.3g}, {hi:.3g}] ({self.evaluated_on}): "
            f"max |F-f| {self.max_error:.3g}, rms {self.rms_error:.3g}; "
            f"max |F'-f'| {self.max_derivative_error:.3g}, rms {self.rms_derivative_error:.3g}; "
            f"{self.seconds * 1e3:.1f} ms"
        )


def resolve_target(target) -> tuple[Callable[[Tensor], Tensor], str]:
    """A callable on tensors and a display name, from a name, a function or a module."""
    if isinstance(target, str):
        classical = lookup(target)
        if classical is None:
            raise ValueError(f"unknown target activation {target!r}; known: {', '.join(TARGETS)}")
        return classical.function, classical.name
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
        if domain is not None:  # fit on the recorded values inside the domain (the extension covers the rest)
            lo, hi = parse_domain(domain)
            inside = s[(s >= lo) & (s <= hi)]
            if inside.numel() < 2:
                raise ValueError(f"fewer than 2 of the {s.numel()} samples lie in the domain [{lo:g}, {hi:g}]")
            q = torch.linspace(0, 1, N_QUANTILES, dtype=torch.float64)
            x = torch.quantile(inside, q)
            return x, torch.ones_like(x), (lo, hi), s
        q = torch.linspace(0, 1, N_QUANTILES, dtype=torch.float64)
        x = torch.quantile(s, q) if s.numel() > 1 else s.repeat(2)
        return x, torch.ones_like(x), (s.min().item(), s.max().item()), s
    if domain is None:
        domain = (-math.sqrt(degree), math.sqrt(degree))
    lo, hi = parse_domain(domain)
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


def _through_clamp(x: Tensor, df: Tensor, limit: float) -> tuple[Tensor, Tensor]:
    """Fit points seen through the clamp u = limit tanh(x / 2): the formula must take f(x) at u, with
    slope f'(x) / (du/dx) there (points where the clamp is flatter than 1e-3 are left out of the slope)."""
    s = torch.tanh(0.5 * x)
    du = limit * 0.5 * (1 - s * s)
    return limit * s, torch.where(du > 1e-3, df / du.clamp_min(1e-3), 0.0)


def _refine(spec: FamilySpec, values: dict[str, Tensor], fixed, options, x, w, f, df, how, steps) -> None:
    """A bounded number of optimisation steps on the weighted value (+ derivative) squared error of
    the reference formula; ``values`` (float64 rows) are updated in place with the best found."""
    params = {name: values[name].detach().clone().unsqueeze(0) for name in spec.param_names}
    learned = [params[name].requires_grad_() for name in spec.param_names if name not in fixed]
    if not learned or steps <= 0:
        return
    xg = x.clone().requires_grad_()
    use_derivative = how.use_derivative

    def loss_fn():
        y = reference.evaluate(spec, xg, [params[n] for n in spec.param_names], **options)
        loss = (w * (y - f) ** 2).sum() / w.sum()
        if use_derivative:
            (dy,) = torch.autograd.grad(y.sum(), xg, create_graph=True)
            loss = loss + (w * (dy - df) ** 2).sum() / w.sum()
        return loss

    best = (loss_fn().item(), [p.detach().clone() for p in learned])
    if how.method == "lbfgs":
        opt = torch.optim.LBFGS(learned, lr=1.0, max_iter=steps, line_search_fn="strong_wolfe")

        def closure():
            opt.zero_grad()
            loss = loss_fn()
            loss.backward()
            return loss

        opt.step(closure)
    else:
        opt = torch.optim.Adam(learned, lr=how.lr)
        for _ in range(steps):
            opt.zero_grad()
            loss = loss_fn()
            if loss.item() < best[0]:
                best = (loss.item(), [p.detach().clone() for p in learned])
            loss.backward()
            opt.step()
    final = loss_fn().item()
    chosen = best[1] if not math.isfinite(final) or final > best[0] else [p.detach() for p in learned]
    for name, value in zip([n for n in spec.param_names if n not in fixed], chosen):
        values[name] = value[0].clone()


def _evaluate(spec: FamilySpec, params: list[Tensor], inputs: InputMap, options, fn, x_eval) -> dict[str, float]:
    """Errors of the module (group 0 of ``params``, with its input map) against the target on ``x_eval``."""
    f, df = _values_and_derivatives(fn, x_eval)
    xg = x_eval.clone().requires_grad_()
    with torch.enable_grad():
        # (clones: parameters made under inference_mode are inference tensors, which autograd cannot save)
        y = reference.evaluate(spec, xg, [p.detach().double().cpu()[:1].clone() for p in params], inputs=inputs, **options)
        (dy,) = torch.autograd.grad(y.sum(), xg)
    err, derr = (y.detach() - f).abs(), (dy - df).abs()
    return {
        "max_error": err.max().item(),
        "rms_error": err.square().mean().sqrt().item(),
        "max_derivative_error": derr.max().item(),
        "rms_derivative_error": derr.square().mean().sqrt().item(),
    }


def _solve(spec, fn, degree, options, fixed, samples, domain, weights, match_derivative, refine_steps, clamp_limit=None):
    """(values, report domain, recorded samples) of a fit; values are 1-D float64 tensors per parameter.

    Runs with gradients on whatever the caller's mode (inits run under ``no_grad``, e.g. in
    ``reset_parameters``): the refinement differentiates the reference formula.
    """
    with torch.inference_mode(False), torch.enable_grad():
        return _solve_graded(spec, fn, degree, options, fixed, samples, domain, weights, match_derivative, refine_steps,
                             clamp_limit)


def default_domain(spec: FamilySpec, degree) -> tuple[float, float]:
    r"""A family's default fit domain: its declared one, else :math:`[-\sqrt n, \sqrt n]` (the paper's)."""
    if degree is None:
        degree = spec.default_degree
    if spec.fit_domain is not None:
        return tuple(spec.fit_domain(degree))
    n = max(spec.degree_values(degree))
    return (-math.sqrt(n), math.sqrt(n))


def fit_errors(module: nn.Module, target, x: Tensor) -> dict[str, float]:
    """Max and RMS error of ``module`` (group 0, its input map included) against ``target`` in value
    and derivative at the points ``x`` (float64, on the reference formula)."""
    fn, _ = resolve_target(target)
    x = x.detach().double().reshape(-1).cpu()
    with torch.inference_mode(False), torch.enable_grad():
        return _evaluate(module.spec, module.reference_tensors(), module.inputs, module.options, fn, x)


def _solve_graded(spec, fn, degree, options, fixed, samples, domain, weights, match_derivative, refine_steps,
                  clamp_limit):
    if domain is None and samples is None:
        domain = default_domain(spec, degree)
    x, w, dom, recorded = _points(max(spec.degree_values(degree)), samples, domain, weights)
    f, df = _values_and_derivatives(fn, x)
    if clamp_limit is not None:  # the formula sees u = limit tanh(x / 2): fit it there
        x, df = _through_clamp(x, df, clamp_limit)
    values = spec.fit_start(x, w, f, df, degree, match_derivative, **options)
    values = {name: torch.as_tensor(values[name], dtype=torch.float64).reshape(-1) for name in spec.param_names}
    how = spec.refine(fixed=frozenset(fixed), **options)
    if how is not None:
        sub = slice(None, None, 4)  # refine on a quarter of the points: same optimum, 4x cheaper steps
        how = type(how)(how.method, how.steps if refine_steps is None else refine_steps,
                        how.use_derivative and match_derivative, how.lr)
        _refine(spec, values, fixed, options, x[sub], w[sub], f[sub], df[sub], how, how.steps)
    return values, dom, recorded


def fit_parameters(spec: FamilySpec, target, degree, *, options: dict | None = None, fixed=(), samples=None,
                   domain=None, weights=None, match_derivative: bool = True, refine_steps: int | None = None,
                   clamp_limit: float | None = None) -> dict[str, Tensor]:
    """The fitted parameter values of family ``spec`` (one row each, float64, on the CPU), without a
    module; with ``clamp_limit`` the formula is fitted behind the clamp ``u = limit tanh(x / 2)``."""
    fn, _ = resolve_target(target)
    with torch.device("cpu"):  # whatever default device the caller set (e.g. "meta" while building a model)
        values, _, _ = _solve(spec, fn, degree, options or {}, fixed, samples, domain, weights, match_derivative,
                              refine_steps, clamp_limit)
    return values


def fit(
    target,
    family: str = "hermite",
    degree=None,
    *,
    samples: Tensor | None = None,
    domain: tuple[float, float] | None = None,
    weights=None,
    match_derivative: bool = True,
    refine_steps: int | None = None,
    extend: bool = False,
    **module_kwargs,
) -> tuple[nn.Module, FitReport]:
    r"""Fit a module of ``family`` to ``target`` in value (and derivative).

    Args:
        target: an activation name (``"gelu"``, ``"silu"``, ``"relu"``, ``"tanh"``, ``"sigmoid"``,
            ``"mish"``, ``"leaky_relu"``, ``"elu"``, ``"softplus"``, ``"gelu_tanh"``), a callable on
            tensors or an ``nn.Module``.
        family: a declared family (``"hermite"``, ``"fourier"``, ``"tropical"``,
            ``"tropical_rational"``, ``"rational"``). Default: ``"hermite"``
        degree: the family's degree (a rational function's ``(numerator, denominator)``).
            Default: the family's default degree
        samples: recorded inputs (calibration); the fit follows their distribution. Default: ``None``
        domain: ``(low, high)`` sampled uniformly when no samples are given.
            Default: :math:`[-\sqrt n, \sqrt n]` (rational: :math:`[-3, 3]`, as PAU and KAT)
        weights: per-point weights on the domain grid (a tensor of 2049 values or a callable of x).
            Default: uniform
        match_derivative: also fit :math:`F' \approx f'` (derivative of the target by autograd).
            Default: ``True``
        refine_steps: optimisation steps after the closed-form start, for families that refine
            (Fourier with learned frequencies: L-BFGS iterations; tropical and rational families:
            Adam steps). Default: the family's (40 or 300)
        extend: the module continues linearly outside the fit's domain (its ``domain``, see
            :mod:`orthoact.inputs`); with ``samples``, they are fitted inside ``domain`` (which is then
            required). Default: ``False``
        module_kwargs: passed to the module (``groups``, ``channel_dim``, ``learn_frequencies``,
            ``version``, ``clamp``, ``backend``, ``dtype``, ``device``, ...); every group gets the fitted
            parameters. With ``clamp=True`` the formula is fitted behind the clamp at its initial limit.

    Returns:
        ``(module, report)``: the fitted module and a :class:`FitReport` with the max and RMS error
        of the value and the derivative on the domain (or on the samples).
    """
    start = time.perf_counter()
    fn, name = resolve_target(target)
    if not isinstance(family, str):
        raise TypeError(f"family must be a family name, got {type(family).__name__}")
    spec = declarations.get(family)
    if spec.module is None:
        raise ValueError(f"family {family!r} has no module class")
    if module_kwargs.get("init") is not None:
        raise ValueError("fit sets the parameters itself: do not pass init")
    module_kwargs.pop("init", None)
    if "domain" in module_kwargs:
        raise TypeError("fit's domain is where it fits; pass extend=True to continue linearly outside it")
    if not isinstance(extend, bool):
        raise TypeError(f"extend must be a bool, got {extend!r}")
    if extend and samples is not None and domain is None:
        raise ValueError("extend=True with samples needs domain=(low, high): the samples are fitted inside it")
    dtype = module_kwargs.pop("dtype", None)
    device = module_kwargs.pop("device", None)
    if degree is not None and not isinstance(degree, tuple):
        degree = (degree,) if len(spec.degree_args) > 1 else degree
    degree_kwargs = {} if degree is None else dict(zip(spec.degree_args, degree if isinstance(degree, tuple) else (degree,)))
    # The module checks the degree and options and knows which parameters are fixed; a random init
    # must not move the caller's random state.
    with torch.random.fork_rng(devices=[]):
        module = spec.module(**degree_kwargs, init="paper" if "paper" in spec.inits else next(iter(spec.inits)),
                             dtype=torch.float64, **module_kwargs)
    fixed = module.fixed_parameters
    limit = module.clamp_limit[0, 0].item() if module.clamp_limit is not None else None
    values, dom, recorded = _solve(spec, fn, module.degree, module.options, fixed, samples, domain, weights,
                                   match_derivative, refine_steps, limit)
    if extend:
        module.domain = parse_domain(dom)
        module.inputs.check(spec)
    with torch.no_grad():
        for pname, v in values.items():
            getattr(module, pname).copy_(v.expand_as(getattr(module, pname)))
    x_eval = recorded if recorded is not None else torch.linspace(dom[0], dom[1], N_REPORT, dtype=torch.float64)
    if x_eval.numel() > 200_000:
        x_eval = x_eval[torch.randperm(x_eval.numel(), generator=torch.Generator().manual_seed(0))[:200_000]]
    with torch.inference_mode(False), torch.enable_grad():
        errors = _evaluate(spec, module.reference_tensors(), module.inputs, module.options, fn, x_eval)
    module = module.to(device=device, dtype=dtype or torch.get_default_dtype())
    report = FitReport(name, spec.name, module.degree, dom, **errors, seconds=time.perf_counter() - start,
                       evaluated_on="samples" if recorded is not None else "domain")
    return module, report
