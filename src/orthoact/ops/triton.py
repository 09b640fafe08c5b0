"""Triton fast path (GPU; on CPU tensors under ``TRITON_INTERPRET=1`` for testing).

The drivers live in :mod:`orthoact.ops.kernels.triton_common` and each family's arithmetic in its
own module (named by its declaration); both are imported on first use, so importing orthoact never
needs Triton (``pip install 'orthoact[triton]'``). Inputs of float32, bfloat16 and float16 are read
as they are and computed in float32; a float64 input or float64 parameters need float64 arithmetic,
which these kernels do not do (``auto`` then uses another path, an explicit ``"triton"`` raises).
The backward runs on a persistent grid whose programs reduce the parameter gradients in registers,
one partial row each, summed on the host side (deterministic: no atomics). Tiles, warps and grids
come from :mod:`orthoact.ops.triton_config`.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import os
from typing import Any, NamedTuple

import torch
from torch import Tensor

from orthoact.backends import recompute_by_autograd
from orthoact.declarations import FamilySpec
from orthoact.inputs import InputMap
from orthoact.ops import triton_config as config
from orthoact.ops._common import MAX_KERNEL_DEGREE as MAX_DEGREE  # (the loops are unrolled at compile time)
from orthoact.ops._common import define_ops, kernel_entry, plain_eager, run, run_recompute
from orthoact.reference import compute_dtype


def unavailable_reason(spec: FamilySpec, x: Tensor, params: list[Tensor], degree, options: dict,
                       inputs: InputMap) -> str | None:
    if spec.kernels is None or spec.kernels(**options).triton_module is None:
        return f"{spec.name} declares no Triton kernels"
    if importlib.util.find_spec("triton") is None:
        return "triton is not installed (pip install 'orthoact[triton]')"
    if compute_dtype(x, *params) == torch.float64:
        return "float64 inputs or parameters need float64 arithmetic; the Triton kernels compute in float32"
    if max(spec.degree_values(degree)) > MAX_DEGREE:
        return f"degree {spec.degree_text(degree)} is above the Triton kernels' limit of {MAX_DEGREE}"
    if x.device.type == "cuda":
        return None
    if x.device.type == "cpu" and os.environ.get("TRITON_INTERPRET") == "1":
        return None
    return f"input is on {x.device.type}; the Triton kernels need CUDA (or TRITON_INTERPRET=1 for CPU testing)"


@functools.cache
def _drivers():
    from orthoact.ops.kernels import triton_common

    return triton_common


class FamilyKernels(NamedTuple):
    """The Triton side of one kernel code, as the launcher (and the resource report) use it."""

    forward: Any
    forward_d: Any  # F and F' together, or None
    backward: Any
    prepare: Any  # host-side packing of the parameters, or None
    aux: Any  # host-side family scalar, or None
    nan_at_infinity: bool
    elements: int  # elements per thread of the plain forward
    value: Any  # F on the backward's (raw) parameters, for the backward that writes the value too


@functools.cache
def family_kernels(code: int) -> FamilyKernels:
    """The Triton functions and launch facts of kernel ``code`` (imports the family's module)."""
    entry = kernel_entry(code)
    module = importlib.import_module(entry.kernel.triton_module)
    forward_d = getattr(module, entry.kernel.triton_forward_d, None) if entry.kernel.triton_forward_d else None
    forward, prepare = getattr(module, entry.kernel.triton_forward), getattr(module, "prepare", None)
    if entry.kernel.triton_value:
        value = getattr(module, entry.kernel.triton_value)
    else:  # (None: the forward reads prepared parameters and no triton_value is declared)
        value = forward if prepare is None else None
    return FamilyKernels(forward, forward_d, getattr(module, entry.kernel.triton_backward), prepare,
                         getattr(module, "aux", None), entry.spec.nan_at_infinity, entry.kernel.triton_elements, value)


def _bounds(inputs: InputMap) -> tuple[float, float]:
    return inputs.domain if inputs.domain is not None else (0.0, 0.0)


def _forward(x: Tensor, params: Tensor, code: int, degree: int, block_len: int, groups: int, inputs: InputMap) -> Tensor:
    y = torch.empty_like(x)
    n = x.numel()
    if n == 0:
        return y
    fwd, fwd_d, _, prepare, aux, nan_at_inf, elements, _ = family_kernels(code)
    p = params.shape[1] - inputs.clamp  # the family's columns (a clamp limit follows)
    prepared = params.float()
    if prepare:
        prepared = torch.cat([prepare(params[:, :p], degree), prepared[:, p:]], dim=1)
    t = config.tiles("forward", elements, inputs.domain is not None or inputs.clamp)
    g = config.forward_grid(n, block_len, groups, t)
    _drivers().forward_kernel[g.grid](
        x, y, prepared.contiguous(), n, block_len, groups, g.tiles_per_run, g.period, g.n_rows,
        float(aux(params, degree)) if aux else 0.0, *_bounds(inputs),
        FWD=fwd, FWD_D=fwd_d or fwd, NAN_AT_INF=nan_at_inf, DEGREE=degree, P=p, CLAMP=inputs.clamp,
        DOMAIN=inputs.domain is not None, ROWS_LAYOUT=g.rows_layout, BLOCK=t.block, ROWS=t.rows, COLS=t.cols,
        num_warps=t.num_warps, enable_fp_fusion=config.FP_FUSION,
    )
    return y


def _backward(grad, x, params, code, degree, block_len, groups, inputs, need_input_grad, need_param_grad, fixed=0,
              want_value=False):
    """``(dx, dparams)``; with ``want_value``, ``(dx, dparams, y)``: the forward's ``y`` from the same
    tiles. (``fixed``: the Triton kernels compute every parameter's sums.)"""
    n = x.numel()
    stride = params.shape[1]
    dx = torch.empty_like(x) if need_input_grad else x.new_empty(0)
    y = torch.empty_like(x) if want_value else None
    if n == 0 or not (need_input_grad or need_param_grad or want_value):
        shape = params.shape if need_param_grad else (0,)
        dparams = torch.zeros(shape, dtype=torch.float32, device=x.device)
        return (dx, dparams, y) if want_value else (dx, dparams)
    _, _, bwd, _, aux, nan_at_inf, _, value = family_kernels(code)
    if want_value and value is None:
        raise TypeError(f"{kernel_entry(code).spec.name}: its Triton forward reads prepared parameters; declare "
                        "triton_value (F on the raw ones) for the backward that writes the value")
    t = config.tiles("backward")
    g = config.backward_grid(n, block_len, groups, stride, t, config.programs(x.device))
    partial = torch.empty(g.partial_shape if need_param_grad else (1,), dtype=torch.float32, device=x.device)
    _drivers().backward_kernel[g.grid](
        x, grad, dx if need_input_grad else x, y if want_value else x, params.float().contiguous(), partial, n,
        block_len, groups, g.tiles_per_run, g.tiles_per_group, g.period, g.n_rows, g.n_row_blocks,
        float(aux(params, degree)) if aux else 0.0, *_bounds(inputs),
        BWD=bwd, VALUE=value, NAN_AT_INF=nan_at_inf, DEGREE=degree, P=stride - inputs.clamp,
        P_PAD=config.p_pad(stride), CLAMP=inputs.clamp, DOMAIN=inputs.domain is not None, NEED_DX=need_input_grad,
        NEED_DP=need_param_grad, WANT_Y=want_value, ROWS_LAYOUT=g.rows_layout, BLOCK=t.block, ROWS=t.rows,
        COLS=t.cols, num_warps=t.num_warps, enable_fp_fusion=config.FP_FUSION,
    )
    if not need_param_grad:
        dparams = x.new_empty(0, dtype=torch.float32)
    elif g.rows_layout:  # (programs, period, P) -> (groups, P)
        dparams = partial.sum(0).view(groups, block_len, stride).sum(1)
    else:
        dparams = partial.sum(1)  # (groups, programs, P) -> (groups, P)
    return (dx, dparams, y) if want_value else (dx, dparams)


triton_forward, triton_backward = define_ops("triton", _forward, _backward, torch.float32)


def triton_run(spec: FamilySpec, x: Tensor, params: list[Tensor], degree, channel_dim: int, options: dict,
               inputs: InputMap) -> Tensor:
    # parameters in float32 whatever the input dtype (the kernels compute in float32)
    return run(triton_forward, spec, x, params, degree, channel_dim, options, inputs, torch.float32,
               (torch.float32, torch.float16, torch.bfloat16))


def triton_recompute(spec: FamilySpec, x: Tensor, params: list[Tensor], grad: Tensor, degree, channel_dim: int,
                     options: dict, inputs: InputMap, need_input_grad: bool, need_params: list[bool]) -> tuple:
    """``(y, dx, dparams)`` from one backward launch that writes the forward's ``y`` too (see
    :mod:`orthoact.backends`): the tiles read x once for both."""
    if not plain_eager(x, grad, *params):  # traced: the custom ops
        return recompute_by_autograd(triton_run, spec, x, params, grad, degree, channel_dim, options, inputs,
                                     need_input_grad, need_params)
    return run_recompute(_backward, spec, x, params, grad, degree, channel_dim, options, inputs, torch.float32,
                         (torch.float32, torch.float16, torch.bfloat16), need_input_grad, need_params)
