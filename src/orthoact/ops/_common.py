"""What the fast paths share: parameter packing, grouping, and custom ops with autograd.

Every fast path is a pair of kernels behind two ``torch.library`` custom ops:
``forward(x, params, family, degree, block_len, groups) -> y`` and
``backward(dy, x, params, ..., need_input_grad, need_param_grad) -> (dx, dparams)``, where
``params`` packs the family's parameters into one ``(groups, P)`` matrix (see ``kernels.cpp``) and
element ``i`` of the contiguous input uses row ``(i // block_len) % groups``. The autograd formula
saves only ``x`` and ``params``; a higher-order derivative (``create_graph=True``) differentiates the
reference formulas instead.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from orthoact import reference
from orthoact.reference import compute_dtype

FAMILY_CODES = {"hermite": 0, "fourier": 1, "tropical": 2, "tropical_rational": 3}
FAMILY_NAMES = {v: k for k, v in FAMILY_CODES.items()}


def n_params(family: int, degree: int) -> int:
    return {0: degree + 1, 1: 3 * degree + 1, 2: degree + 1, 3: 4 * (degree + 1)}[family]


def split(family: int, params: Tensor, degree: int) -> list[Tensor]:
    """Unpack the (groups, P) parameter matrix into the family's functional arguments."""
    sizes = {0: [degree + 1], 1: [1, degree, degree, degree], 2: [degree + 1], 3: [degree + 1] * 4}[family]
    return list(params.split(sizes, dim=1))


def block_len(x: Tensor, groups: int, channel_dim: int) -> int:
    if groups == 1:
        return max(x.numel(), 1)
    dim = channel_dim % x.dim()
    return (x.shape[dim] // groups) * math.prod(x.shape[dim + 1 :])


def define_ops(prefix: str, forward_impl: Callable, backward_impl: Callable, device_types=None):
    """Register ``orthoact::{prefix}_forward`` / ``_backward`` with fake kernels and autograd."""

    @torch.library.custom_op(f"orthoact::{prefix}_forward", mutates_args=(), device_types=device_types)
    def forward_op(x: Tensor, params: Tensor, family: int, degree: int, block_len: int, groups: int) -> Tensor:
        return forward_impl(x, params, family, degree, block_len, groups)

    @forward_op.register_fake
    def _(x, params, family, degree, block_len, groups):
        return torch.empty_like(x)

    @torch.library.custom_op(f"orthoact::{prefix}_backward", mutates_args=(), device_types=device_types)
    def backward_op(
        grad: Tensor, x: Tensor, params: Tensor, family: int, degree: int, block_len: int, groups: int,
        need_input_grad: bool, need_param_grad: bool,
    ) -> tuple[Tensor, Tensor]:
        return backward_impl(grad, x, params, family, degree, block_len, groups, need_input_grad, need_param_grad)

    @backward_op.register_fake
    def _(grad, x, params, family, degree, block_len, groups, need_input_grad, need_param_grad):
        dx = torch.empty_like(x) if need_input_grad else x.new_empty(0)
        shape = params.shape if need_param_grad else (0,)
        return dx, params.new_empty(shape, dtype=torch.float64 if prefix == "fused" else torch.float32)

    def setup_context(ctx, inputs, output):
        x, params, family, degree, block_len_, groups = inputs
        ctx.save_for_backward(x, params)
        ctx.meta = (family, degree, block_len_, groups)

    def backward(ctx, grad):
        x, params = ctx.saved_tensors
        if torch.is_grad_enabled():  # a higher-order derivative was asked for
            return reference_backward(ctx, grad, x, params)
        need_x, need_p = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        dx, dparams = backward_op(grad.contiguous(), x, params, *ctx.meta, need_x, need_p)
        return (dx if need_x else None), (dparams.to(params.dtype) if need_p else None), None, None, None, None

    forward_op.register_autograd(backward, setup_context=setup_context)
    return forward_op, backward_op


def reference_backward(ctx, grad, x, params):
    """Differentiable backward: autograd through the reference formulas.

    The contiguous input's grouping, group (i // block_len) % groups, is the reference's grouping of
    ``x.reshape(-1, groups, block_len)`` along dimension 1.
    """
    family, degree, block_len_, groups = ctx.meta
    fn = getattr(reference, FAMILY_NAMES[family])
    y = fn(x.reshape(-1, groups, block_len_), *split(family, params, degree), channel_dim=1).reshape(x.shape)
    wanted = [t for t, need in zip((x, params), ctx.needs_input_grad[:2]) if need]
    grads = iter(torch.autograd.grad(y, wanted, grad, create_graph=True))
    return tuple(next(grads) if need else None for need in ctx.needs_input_grad[:2]) + (None,) * 4


def apply(op, family: str, x: Tensor, params: list[Tensor], degree: int, channel_dim: int, dtype: torch.dtype | None = None,
          native_dtypes=(torch.float32, torch.float64)) -> Tensor:
    """Pack the parameters, make ``x`` contiguous (in a dtype the kernels take) and call ``op``."""
    dtype = dtype or compute_dtype(x, *params)
    packed = torch.cat([p.to(dtype) for p in params], dim=1).contiguous()  # autograd splits the grads back
    groups = packed.shape[0]
    xc = (x if x.dtype in native_dtypes else x.to(dtype)).contiguous()
    y = op(xc, packed, FAMILY_CODES[family], degree, block_len(x, groups, channel_dim), groups)
    return y.to(x.dtype)


def implementations(run: Callable) -> dict[str, Callable]:
    """The four functional implementations of one fast path, given ``run(family, x, params, degree, channel_dim)``."""

    def hermite(x, coefficients, channel_dim=-1):
        return run("hermite", x, [coefficients], coefficients.shape[1] - 1, channel_dim)

    def fourier(x, bias, coefficients, frequencies, phases, channel_dim=-1):
        return run("fourier", x, [bias, coefficients, frequencies, phases], coefficients.shape[1], channel_dim)

    def tropical(x, offsets, channel_dim=-1):
        return run("tropical", x, [offsets], offsets.shape[1] - 1, channel_dim)

    def tropical_rational(x, slopes_num, offsets_num, slopes_den, offsets_den, channel_dim=-1):
        return run("tropical_rational", x, [slopes_num, offsets_num, slopes_den, offsets_den], slopes_num.shape[1] - 1, channel_dim)

    return {"hermite": hermite, "fourier": fourier, "tropical": tropical, "tropical_rational": tropical_rational}
