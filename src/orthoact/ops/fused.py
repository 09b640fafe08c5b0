"""Fused CPU fast path: ``torch.library`` custom ops over the C++ kernels of ``kernels.cpp``.

Forward saves only the input and the (small) parameter tensor; backward recomputes the basis and
returns the input gradient and the parameter gradients (reduced in the compute precision per chunk
of 256 elements, accumulated in float64). The ops have fake implementations, so
``torch.compile(model, fullgraph=True)`` sees them as opaque nodes without graph breaks.

float32 and float64 run natively; float16 and bfloat16 inputs are computed in float32.
The kernels compute first derivatives; when a higher-order derivative is asked for
(``create_graph=True``), the backward differentiates the reference formulas instead.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from orthoact.ops._build import load
from orthoact.reference import compute_dtype

FAMILY_CODES = {"hermite": 0, "fourier": 1, "tropical": 2, "tropical_rational": 3}
_DTYPE_CODES = {torch.float32: 0, torch.float64: 1}


@torch.compiler.assume_constant_result
def _kernel_error() -> str | None:
    # Evaluated eagerly while torch.compile traces (building takes a lock and runs a compiler).
    return load().error


def unavailable_reason(x: Tensor) -> str | None:
    if x.device.type != "cpu":
        return f"input is on {x.device.type}; the fused kernels run on CPU tensors"
    return _kernel_error()


def _library():
    info = load()
    if info.library is None:
        raise RuntimeError(f"orthoact fused kernels unavailable: {info.error}")
    return info.library


@torch.library.custom_op("orthoact::fused_forward", mutates_args=())
def fused_forward(x: Tensor, params: Tensor, family: int, degree: int, block_len: int, groups: int) -> Tensor:
    """y = F(x) for a contiguous float32/float64 ``x`` and packed ``params`` (groups, P) of x's dtype."""
    y = torch.empty_like(x)
    if x.numel():
        status = _library().oa_forward(
            family, _DTYPE_CODES[x.dtype], x.data_ptr(), y.data_ptr(), x.numel(), block_len, groups,
            params.data_ptr(), degree, torch.get_num_threads(),
        )
        if status:
            raise RuntimeError(f"orthoact fused forward failed (status {status})")
    return y


@fused_forward.register_fake
def _(x, params, family, degree, block_len, groups):
    return torch.empty_like(x)


@torch.library.custom_op("orthoact::fused_backward", mutates_args=())
def fused_backward(
    grad: Tensor, x: Tensor, params: Tensor, family: int, degree: int, block_len: int, groups: int,
    need_input_grad: bool, need_param_grad: bool,
) -> tuple[Tensor, Tensor]:
    """(dL/dx, dL/dparams); an unneeded gradient is returned as an empty tensor."""
    dx = torch.empty_like(x) if need_input_grad else x.new_empty(0)
    dparams = torch.zeros(params.shape, dtype=torch.float64) if need_param_grad else params.new_empty(0, dtype=torch.float64)
    if x.numel() and (need_input_grad or need_param_grad):
        status = _library().oa_backward(
            family, _DTYPE_CODES[x.dtype], x.data_ptr(), grad.data_ptr(),
            dx.data_ptr() if need_input_grad else None, dparams.data_ptr() if need_param_grad else None,
            x.numel(), block_len, groups, params.data_ptr(), degree, torch.get_num_threads(),
        )
        if status:
            raise RuntimeError(f"orthoact fused backward failed (status {status})")
    return dx, dparams


@fused_backward.register_fake
def _(grad, x, params, family, degree, block_len, groups, need_input_grad, need_param_grad):
    dx = torch.empty_like(x) if need_input_grad else x.new_empty(0)
    shape = params.shape if need_param_grad else (0,)
    return dx, params.new_empty(shape, dtype=torch.float64)


def _setup_context(ctx, inputs, output):
    x, params, family, degree, block_len, groups = inputs
    ctx.save_for_backward(x, params)
    ctx.meta = (family, degree, block_len, groups)


def _split(family: int, params: Tensor, degree: int) -> list[Tensor]:
    """Unpack the (groups, P) parameter matrix into the family's functional arguments."""
    sizes = {0: [degree + 1], 1: [1, degree, degree, degree], 2: [degree + 1], 3: [degree + 1] * 4}[family]
    return list(params.split(sizes, dim=1))


def _reference_backward(ctx, grad, x, params):
    """Differentiable backward (``create_graph=True``): autograd through the reference formulas.

    The contiguous input's grouping, group (i // block_len) % groups, is the reference's grouping of
    ``x.reshape(-1, groups, block_len)`` along dimension 1.
    """
    from orthoact import reference

    family, degree, block_len, groups = ctx.meta
    fn = getattr(reference, {v: k for k, v in FAMILY_CODES.items()}[family])
    y = fn(x.reshape(-1, groups, block_len), *_split(family, params, degree), channel_dim=1).reshape(x.shape)
    wanted = [t for t, need in zip((x, params), ctx.needs_input_grad[:2]) if need]
    grads = iter(torch.autograd.grad(y, wanted, grad, create_graph=True))
    return tuple(next(grads) if need else None for need in ctx.needs_input_grad[:2]) + (None,) * 4


def _backward(ctx, grad):
    x, params = ctx.saved_tensors
    if torch.is_grad_enabled():  # a higher-order derivative was asked for
        return _reference_backward(ctx, grad, x, params)
    need_x, need_p = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
    dx, dparams = fused_backward(grad.contiguous(), x, params, *ctx.meta, need_x, need_p)
    return (dx if need_x else None), (dparams.to(params.dtype) if need_p else None), None, None, None, None


fused_forward.register_autograd(_backward, setup_context=_setup_context)


def _block_len(x: Tensor, groups: int, channel_dim: int) -> int:
    if groups == 1:
        return max(x.numel(), 1)
    dim = channel_dim % x.dim()
    return (x.shape[dim] // groups) * math.prod(x.shape[dim + 1 :])


MAX_DEGREE = 64  # as in kernels.cpp; higher degrees run on the reference implementation


def _apply(family: str, x: Tensor, params: list[Tensor], degree: int, channel_dim: int) -> Tensor:
    if degree > MAX_DEGREE:
        from orthoact import reference

        return getattr(reference, family)(x, *params, channel_dim=channel_dim)
    dtype = compute_dtype(x, *params)
    packed = torch.cat([p.to(dtype) for p in params], dim=1).contiguous()  # autograd splits the grads back
    groups = packed.shape[0]
    xc = x.to(dtype).contiguous()
    y = fused_forward(xc, packed, FAMILY_CODES[family], degree, _block_len(x, groups, channel_dim), groups)
    return y.to(x.dtype)


def hermite(x: Tensor, coefficients: Tensor, channel_dim: int = -1) -> Tensor:
    return _apply("hermite", x, [coefficients], coefficients.shape[1] - 1, channel_dim)


def fourier(x, bias, coefficients, frequencies, phases, channel_dim: int = -1) -> Tensor:
    return _apply("fourier", x, [bias, coefficients, frequencies, phases], coefficients.shape[1], channel_dim)


def tropical(x: Tensor, offsets: Tensor, channel_dim: int = -1) -> Tensor:
    return _apply("tropical", x, [offsets], offsets.shape[1] - 1, channel_dim)


def tropical_rational(x, slopes_num, offsets_num, slopes_den, offsets_den, channel_dim: int = -1) -> Tensor:
    params = [slopes_num, offsets_num, slopes_den, offsets_den]
    return _apply("tropical_rational", x, params, slopes_num.shape[1] - 1, channel_dim)


IMPLEMENTATIONS = {
    "hermite": hermite,
    "fourier": fourier,
    "tropical": tropical,
    "tropical_rational": tropical_rational,
}
