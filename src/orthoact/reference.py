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
* **non-finite inputs**: a NaN input gives a NaN output, a NaN input gradient, and NaN in the gradient
  of every parameter of its group (never a finite value that hides it). Families declared with
  ``nan_at_infinity`` (Hermite, Fourier, tropical rational, rational: no usable value at infinity,
  e.g. ``inf - inf`` or ``0 * inf``) treat +-inf as NaN; the tropical polynomial gives its limits
  (+inf at +inf, the constant piece at -inf, with the gradient of the first arg-max).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from orthoact.declarations import FamilySpec


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


def evaluate(spec: FamilySpec, x: Tensor, params: Sequence[Tensor], channel_dim: int = -1, **options) -> Tensor:
    """The activation of family ``spec`` with ``params`` (in declaration order) on ``x``."""
    dtype = compute_dtype(x, *params)
    xg, column = _grouped(x, params[0].shape[0], channel_dim, dtype)
    if spec.nan_at_infinity:
        xg = xg + (xg - xg)  # +-inf -> NaN (inf - inf), finite x unchanged, derivative 1
    columns = [[column(p[:, k]) for k in range(p.shape[1])] for p in params]
    y = spec.evaluate(xg, *columns, **options)
    # A NaN input reaches its input gradient and every parameter of its group: (total + x) * x is NaN
    # there with NaN derivatives in x and in every parameter (selected only where x is NaN, so
    # non-finite parameters change nothing elsewhere).
    nan = torch.isnan(xg)
    x_nan = torch.where(nan, xg, 0.0)
    total = sum(c for cs in columns for c in cs)
    y = torch.where(nan, y + (total + x_nan) * x_nan, y)
    return y.reshape(x.shape).to(x.dtype)


def function(spec: FamilySpec) -> Callable[..., Tensor]:
    """``fn(x, *params, channel_dim=-1, **options)``: the reference of one family as a function."""

    def fn(x: Tensor, *params: Tensor, channel_dim: int = -1, **options) -> Tensor:
        return evaluate(spec, x, params, channel_dim, **options)

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
