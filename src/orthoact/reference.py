"""The plain eager implementation of every family: the specification that fast paths are tested against.

Each function takes the input and the parameter tensors of shape ``(groups, n_params)`` and
computes the activation with ordinary PyTorch operations (autograd gives the backward). It does no
argument checking: :mod:`orthoact.functional` validates at the public boundary and dispatches here.

Inputs of any floating dtype are computed in at least float32 and returned in the input's dtype.
With ``groups > 1`` the input's ``channel_dim`` is split into ``groups`` consecutive blocks, block
``g`` using the parameters in row ``g``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from orthoact.basis import fourier_series, hermite_series, max_affine, tropical_scale


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


def hermite(x: Tensor, coefficients: Tensor, channel_dim: int = -1) -> Tensor:
    r""":math:`F(x) = \sum_k a_k h_k(x)` with ``coefficients`` of shape ``(groups, degree + 1)``."""
    xg, column = _grouped(x, coefficients.shape[0], channel_dim, compute_dtype(x, coefficients))
    y = hermite_series(xg, [column(coefficients[:, k]) for k in range(coefficients.shape[1])])
    return y.reshape(x.shape).to(x.dtype)


def fourier(
    x: Tensor, bias: Tensor, coefficients: Tensor, frequencies: Tensor, phases: Tensor, channel_dim: int = -1
) -> Tensor:
    r""":math:`F(x) = b + \sum_k c_k \cos(w_k x - \varphi_k)/k!`; bias ``(groups, 1)``, others ``(groups, degree)``."""
    dtype = compute_dtype(x, bias, coefficients, frequencies, phases)
    xg, column = _grouped(x, bias.shape[0], channel_dim, dtype)
    n = coefficients.shape[1]
    y = fourier_series(
        xg,
        column(bias[:, 0]),
        [column(coefficients[:, k]) for k in range(n)],
        [column(frequencies[:, k]) for k in range(n)],
        [column(phases[:, k]) for k in range(n)],
    )
    return y.reshape(x.shape).to(x.dtype)


def tropical(x: Tensor, offsets: Tensor, channel_dim: int = -1) -> Tensor:
    r""":math:`F(x) = \frac{\sqrt2}{n}\max_{k=0..n}(kx + a_k)` with ``offsets`` of shape ``(groups, degree + 1)``."""
    xg, column = _grouped(x, offsets.shape[0], channel_dim, compute_dtype(x, offsets))
    n = offsets.shape[1] - 1
    slopes = [None] + [float(k) for k in range(1, n + 1)]
    y = tropical_scale(n) * max_affine(xg, slopes, [column(offsets[:, k]) for k in range(n + 1)])
    return y.reshape(x.shape).to(x.dtype)


def tropical_rational(
    x: Tensor,
    slopes_num: Tensor,
    offsets_num: Tensor,
    slopes_den: Tensor,
    offsets_den: Tensor,
    channel_dim: int = -1,
) -> Tensor:
    r""":math:`F(x) = \max_k(p_k x + a_k) - \max_k(q_k x + b_k)`; each parameter ``(groups, degree + 1)``."""
    dtype = compute_dtype(x, slopes_num, offsets_num, slopes_den, offsets_den)
    xg, column = _grouped(x, slopes_num.shape[0], channel_dim, dtype)

    def columns(t: Tensor) -> list[Tensor]:
        return [column(t[:, k]) for k in range(t.shape[1])]

    y = max_affine(xg, columns(slopes_num), columns(offsets_num)) - max_affine(
        xg, columns(slopes_den), columns(offsets_den)
    )
    return y.reshape(x.shape).to(x.dtype)
