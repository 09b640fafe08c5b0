"""The plain eager implementation of every family: the specification that fast paths are tested against.

:func:`evaluate` takes a family's declaration, the input and the parameter tensors of shape
``(groups, n_params)``, and computes the activation with ordinary PyTorch operations from the
family's formula (autograd gives the backward). It does no argument checking:
:mod:`orthoact.functional` validates at the public boundary and dispatches here.

Rules every backend follows (the fast paths are tested against them):

* **dtypes**: the arithmetic runs in the promoted dtype of the input and the parameters, at least
  float32, as PyTorch's type promotion would for ``x * w`` (a float32 input with float64 parameters
  is computed in float64; bfloat16 with float32 in float32). The result has the input's dtype: an
  activation never changes the dtype flowing through a network (under autocast a bfloat16 input
  stays bfloat16 whatever the parameters' dtype). Parameter gradients have each parameter's dtype.
* **groups**: with ``groups > 1`` the input's ``channel_dim`` is split into ``groups`` consecutive
  blocks, block ``g`` using the parameters in row ``g``.
* **input map** (:mod:`orthoact.inputs`): with a clamp the formula sees ``limit * tanh(x / 2)``; with a
  domain it is continued along its tangent outside ``[lo, hi]``. The non-finite rules below apply to
  ``x`` itself.
* **non-finite inputs**: a NaN input gives a NaN output, a NaN input gradient, and NaN in the gradient
  of every parameter of its group (never a finite value that hides it). Families declared with
  ``nan_at_infinity`` (Hermite, Fourier, tropical rational, rational: no usable value at infinity,
  e.g. ``inf - inf`` or ``0 * inf``) treat +-inf as NaN; the tropical polynomial gives its limits
  (+inf at +inf, the constant piece at -inf, with the gradient of the first arg-max).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from orthoact.declarations import FamilySpec
from orthoact.inputs import InputMap

IDENTITY = InputMap()


def compute_dtype(x: Tensor, *params: Tensor) -> torch.dtype:
    """The dtype the arithmetic runs in: at least float32, float64 if input or parameters are."""
    dtype = torch.float32
    for t in (x, *params):
        dtype = torch.promote_types(dtype, t.dtype)
    return dtype


def _grouped(x: Tensor, groups: int, channel_dim: int, dtype: torch.dtype) -> tuple[Tensor, Callable[[Tensor], Tensor]]:
    """Split the channel dimension into ``(groups, channels // groups)``.

    Returns the reshaped input (in ``dtype``) and a function turning a ``(groups,)`` parameter
    column into a tensor that broadcasts against it.
    """
    x = x.to(dtype)
    if groups == 1:
        return x, lambda column: column.to(dtype).reshape(())
    dim = channel_dim % x.dim()
    xg = x.unflatten(dim, (groups, x.shape[dim] // groups))
    trailing = (1,) * (xg.dim() - dim - 1)
    return xg, lambda column: column.to(dtype).reshape((groups,) + trailing)


def evaluate(spec: FamilySpec, x: Tensor, params: Sequence[Tensor], channel_dim: int = -1,
             inputs: InputMap = IDENTITY, **options) -> Tensor:
    """The activation of family ``spec`` with ``params`` (in declaration order; with ``inputs.clamp``
    the clamp limit ``(groups, 1)`` last) on ``x``, the input mapped as ``inputs`` says (see
    :mod:`orthoact.inputs`)."""
    dtype = compute_dtype(x, *params)
    xg, column = _grouped(x, params[0].shape[0], channel_dim, dtype)
    if spec.nan_at_infinity:
        xg = xg + (xg - xg)  # +-inf -> NaN (inf - inf), finite x unchanged, derivative 1
    columns = [[column(p[:, k]) for k in range(p.shape[1])] for p in params]
    family_columns = columns[:-1] if inputs.clamp else columns
    u = columns[-1][0] * torch.tanh(0.5 * xg) if inputs.clamp else xg  # = limit (2 sigmoid(x) - 1)
    if inputs.domain is None:
        y = spec.evaluate(u, *family_columns, **options)
    else:
        c = u.clamp(*inputs.domain)
        y = spec.evaluate(c, *family_columns, **options) + (u - c) * spec.derivative(c, *family_columns, **options)
    # A NaN input reaches its input gradient and every parameter of its group: (total + x) * x is NaN
    # there with NaN derivatives in x and in every parameter (selected only where x is NaN, so
    # non-finite parameters change nothing elsewhere).
    nan = torch.isnan(xg)
    x_nan = torch.where(nan, xg, 0.0)
    total = sum(c for cs in columns for c in cs)
    y = torch.where(nan, y + (total + x_nan) * x_nan, y)
    return y.reshape(x.shape).to(x.dtype)


def function(spec: FamilySpec) -> Callable[..., Tensor]:
    """``fn(x, *params, channel_dim=-1, inputs=InputMap(), **options)``: the reference of one family."""

    def fn(x: Tensor, *params: Tensor, channel_dim: int = -1, inputs: InputMap = IDENTITY, **options) -> Tensor:
        return evaluate(spec, x, params, channel_dim, inputs, **options)

    fn.__name__ = spec.name
    fn.__doc__ = f"Reference {spec.name}: {spec.formula}."
    return fn


def __getattr__(name: str):
    """``reference.hermite`` etc.: the reference function of a declared family."""
    from orthoact import declarations

    try:
        return function(declarations.get(name))
    except ValueError:
        raise AttributeError(f"module 'orthoact.reference' has no attribute {name!r}") from None


def integrated_gains(spec: FamilySpec, params: Sequence[Tensor], inputs: InputMap = IDENTITY, options: dict | None = None,
                     variance: float = 1.0) -> tuple[Tensor, Tensor]:
    """``(E[F(x)^2], E[F'(x)^2])`` for x ~ N(0, variance), per group (``(groups,)``, float64), by the
    trapezoid rule on 24001 points of [-12, 12] standard deviations, of the reference (with its input
    map); differentiable in the parameters."""
    z = torch.linspace(-12.0, 12.0, 24001, dtype=torch.float64, device=params[0].device)
    weight = torch.exp(-0.5 * z**2) / math.sqrt(2 * math.pi)
    groups = params[0].shape[0]
    with torch.enable_grad():
        x = (math.sqrt(variance) * z).expand(groups, -1).clone().requires_grad_()
        y = evaluate(spec, x, params, 0, inputs, **(options or {}))
        (dy,) = torch.autograd.grad(y.sum(), x, create_graph=True)
    return torch.trapezoid(y**2 * weight, z, dim=-1), torch.trapezoid(dy**2 * weight, z, dim=-1)
