"""Fused CPU fast path: ``torch.library`` custom ops over the C++ kernels in ``kernels/``.

Forward saves only the input and the (small) parameter tensor; backward recomputes the basis and
returns the input gradient and the parameter gradients (reduced in the compute precision per SIMD
lane, accumulated in float64). The ops have fake implementations, so
``torch.compile(model, fullgraph=True)`` sees them as opaque nodes without graph breaks.

The arithmetic runs in the promoted dtype of the input and the parameters, at least float32 (see
:func:`orthoact.reference.compute_dtype`): float32 and float64 natively, float16 and bfloat16 inputs
are computed in float32, and a float32 input with float64 parameters is computed in float64. The
input is converted inside the op, so what is saved for backward is the input in its own dtype.
The kernels compute first derivatives; when a higher-order derivative is asked for
(``create_graph=True``), the backward differentiates the reference formulas instead.
"""

from __future__ import annotations

import torch
from torch import Tensor

from orthoact.backends import recompute_by_autograd
from orthoact.declarations import FamilySpec
from orthoact.inputs import InputMap
from orthoact.ops._build import library
from orthoact.ops._common import MAX_KERNEL_DEGREE as MAX_DEGREE
from orthoact.ops._common import define_ops, kernel_entry, plain_eager, run, run_recompute
from orthoact.reference import compute_dtype

_DTYPE_CODES = {torch.float32: 0, torch.float64: 1}


def _kernel_error(family: str) -> str | None:
    return library(family).error


# torch.compile must call this eagerly while tracing (building takes a lock and runs a compiler).
# This is what torch.compiler.assume_constant_result does; applying it directly here would import
# torch._dynamo (over a second) at every `import orthoact`.
_kernel_error._dynamo_marked_constant = True


def unavailable_reason(spec: FamilySpec, x: Tensor, params: list[Tensor], degree, options: dict,
                       inputs: InputMap) -> str | None:
    if spec.kernels is None or spec.kernels(**options).cpp_header is None:
        return f"{spec.name} declares no C++ kernels"
    if x.device.type != "cpu":
        return f"input is on {x.device.type}; the fused kernels run on CPU tensors"
    if max(spec.degree_values(degree)) > MAX_DEGREE:
        return f"degree {spec.degree_text(degree)} is above the fused kernels' limit of {MAX_DEGREE}"
    return _kernel_error(spec.name)


def _library(code: int):
    """The family library of a kernel code and the variant's number inside it."""
    entry = kernel_entry(code)
    info = library(entry.spec.name)
    if info.library is None:
        raise RuntimeError(f"orthoact fused kernels of {entry.spec.name} unavailable: {info.error}")
    return info.library, entry.variant


def _forward(x: Tensor, params: Tensor, code: int, degree: int, block_len: int, groups: int, inputs: InputMap) -> Tensor:
    # The arithmetic runs in the parameters' dtype (the promoted one); converting x here rather than
    # before the op keeps the tensor saved for backward in x's own dtype (bfloat16 under autocast).
    xc = x if x.dtype == params.dtype else x.to(params.dtype)
    y = torch.empty_like(xc)
    if x.numel():
        lib, variant = _library(code)
        status = lib.oa_forward(
            variant, _DTYPE_CODES[xc.dtype], xc.data_ptr(), y.data_ptr(), x.numel(), block_len, groups,
            params.data_ptr(), degree, params.shape[1], torch.get_num_threads(), *_map_args(inputs),
        )
        if status:
            raise RuntimeError(f"orthoact fused forward failed (status {status})")
    return y if y.dtype == x.dtype else y.to(x.dtype)


def _map_args(inputs: InputMap) -> tuple[int, float, float]:
    lo, hi = inputs.domain if inputs.domain is not None else (0.0, 0.0)
    return inputs.flags, lo, hi


def _backward(grad, x, params, code, degree, block_len, groups, inputs, need_input_grad, need_param_grad, fixed=0,
              want_value=False):
    """``(dx, dparams)``; with ``want_value``, ``(dx, dparams, y)``: the forward's ``y = F(x)`` from the
    same call (from the backward's own pass where the family computes it there)."""
    out_dtype = x.dtype
    x = x if x.dtype == params.dtype else x.to(params.dtype)
    grad = grad if grad.dtype == params.dtype else grad.to(params.dtype)
    dx = torch.empty_like(x) if need_input_grad else x.new_empty(0)
    dparams = torch.zeros(params.shape, dtype=torch.float64) if need_param_grad else params.new_empty(0, dtype=torch.float64)
    y = torch.empty_like(x) if want_value else None
    if x.numel() and (need_input_grad or need_param_grad or want_value):
        lib, variant = _library(code)
        status = lib.oa_backward(
            variant, _DTYPE_CODES[x.dtype], x.data_ptr(), grad.data_ptr(),
            dx.data_ptr() if need_input_grad else None, dparams.data_ptr() if need_param_grad else None,
            x.numel(), block_len, groups, params.data_ptr(), degree, params.shape[1], torch.get_num_threads(),
            *_map_args(inputs), fixed, y.data_ptr() if want_value else None,
        )
        if status:
            raise RuntimeError(f"orthoact fused backward failed (status {status})")
    dx = dx if dx.dtype == out_dtype or not need_input_grad else dx.to(out_dtype)
    if not want_value:
        return dx, dparams
    return dx, dparams, (y if y.dtype == out_dtype else y.to(out_dtype))


fused_forward, fused_backward = define_ops("fused", _forward, _backward, torch.float64)


def fused_run(spec: FamilySpec, x: Tensor, params: list[Tensor], degree, channel_dim: int, options: dict,
              inputs: InputMap) -> Tensor:
    dtype = compute_dtype(x, *params)  # the kernels convert x to it (x is saved in its own dtype)
    return run(fused_forward, spec, x, params, degree, channel_dim, options, inputs, dtype, _INPUT_DTYPES)


def fused_recompute(spec: FamilySpec, x: Tensor, params: list[Tensor], grad: Tensor, degree, channel_dim: int,
                    options: dict, inputs: InputMap, need_input_grad: bool, need_params: list[bool]) -> tuple:
    """``(y, dx, dparams)``: ``F(x)`` and the gradients for ``grad = dL/dF(x)`` from one backward call
    (see :mod:`orthoact.backends`): the backward's pass writes the value from what it computes anyway
    (Fourier's sines and cosines, Hermite's basis, the maxima, P/Q) where one group's run is long
    and there is no input map; otherwise the forward runs first, in the same call."""
    if not plain_eager(x, grad, *params):  # traced (compiled autograd, a dispatch mode...): the custom ops
        return recompute_by_autograd(fused_run, spec, x, params, grad, degree, channel_dim, options, inputs,
                                     need_input_grad, need_params)
    dtype = compute_dtype(x, *params)
    return run_recompute(_backward, spec, x, params, grad, degree, channel_dim, options, inputs, dtype, _INPUT_DTYPES,
                         need_input_grad, need_params)


_INPUT_DTYPES = (torch.float32, torch.float64, torch.bfloat16, torch.float16)

__all__ = ["fused_forward", "fused_backward", "fused_run", "fused_recompute", "unavailable_reason", "MAX_DEGREE"]
