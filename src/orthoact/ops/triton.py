"""Triton fast path (GPU; on CPU tensors under ``TRITON_INTERPRET=1`` for testing).

The drivers live in :mod:`orthoact.ops.kernels.triton_common` and each family's arithmetic in its
own module (named by its declaration); both are imported on first use, so importing orthoact never
needs Triton (``pip install 'orthoact[triton]'``). Inputs of float32, bfloat16 and float16 are read
as they are and computed in float32; a float64 input or float64 parameters need float64 arithmetic,
which these kernels do not do (``auto`` then uses another path, an explicit ``"triton"`` raises).
Parameter gradients are per-program partial sums, summed on the host side.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import math
import os

import torch
from torch import Tensor

from orthoact.declarations import FamilySpec
from orthoact.ops._common import MAX_KERNEL_DEGREE as MAX_DEGREE  # (the loops are unrolled at compile time)
from orthoact.ops._common import define_ops, kernel_entry, run
from orthoact.reference import compute_dtype

BLOCK = 4096
ROWS, COLS = 256, 16  # rows-layout tile of the backward
MIN_RUN = 1024  # shorter runs of one group use the rows layout


def unavailable_reason(spec: FamilySpec, x: Tensor, params: list[Tensor], degree, options: dict) -> str | None:
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


@functools.cache
def _family(code: int):
    """(forward, backward, prepare, aux, nan_at_infinity) of a kernel code."""
    entry = kernel_entry(code)
    module = importlib.import_module(entry.kernel.triton_module)
    return (getattr(module, entry.kernel.triton_forward), getattr(module, entry.kernel.triton_backward),
            getattr(module, "prepare", None), getattr(module, "aux", None), entry.spec.nan_at_infinity)


def _forward(x: Tensor, params: Tensor, code: int, degree: int, block_len: int, groups: int) -> Tensor:
    y = torch.empty_like(x)
    n = x.numel()
    if n == 0:
        return y
    fwd, _, prepare, aux, nan_at_inf = _family(code)
    prepared = prepare(params, degree) if prepare else params
    grid = (math.ceil(n / BLOCK),)
    _drivers().forward_kernel[grid](
        x, y, prepared.float().contiguous(), n, block_len, groups, float(aux(params, degree)) if aux else 0.0,
        FWD=fwd, NAN_AT_INF=nan_at_inf, DEGREE=degree, P=params.shape[1], BLOCK=BLOCK,
    )
    return y


def _backward(grad, x, params, code, degree, block_len, groups, need_input_grad, need_param_grad):
    n = x.numel()
    P = params.shape[1]
    dx = torch.empty_like(x) if need_input_grad else x.new_empty(0)
    if n == 0 or not (need_input_grad or need_param_grad):
        shape = params.shape if need_param_grad else (0,)
        dparams = torch.zeros(shape, dtype=torch.float32, device=x.device)
        return dx, dparams
    _, bwd, _, aux, nan_at_inf = _family(code)
    p32 = params.float().contiguous()
    dx_arg = dx if need_input_grad else x  # never written when NEED_DX is false
    common = dict(BWD=bwd, NAN_AT_INF=nan_at_inf, DEGREE=degree, P=P, NEED_DX=need_input_grad, NEED_DP=need_param_grad,
                  BLOCK=BLOCK, ROWS=ROWS, COLS=COLS)
    aux_value = float(aux(params, degree)) if aux else 0.0
    kernel = _drivers().backward_kernel
    if groups > 1 and block_len < MIN_RUN:
        period = groups * block_len
        n_rows = n // period
        grid = (math.ceil(n_rows / ROWS), math.ceil(period / COLS))
        partial = torch.empty((grid[0], period, P), dtype=torch.float32, device=x.device)
        kernel[grid](x, grad, dx_arg, p32, partial, n, block_len, groups, 1, period, n_rows, aux_value,
                     ROWS_LAYOUT=True, **common)
        dparams = partial.sum(0).view(groups, block_len, P).sum(1) if need_param_grad else x.new_empty(0, dtype=torch.float32)
    else:
        runs = n // block_len
        per_run = math.ceil(block_len / BLOCK)
        partial = torch.empty((runs * per_run, P), dtype=torch.float32, device=x.device)
        kernel[(runs * per_run,)](x, grad, dx_arg, p32, partial, n, block_len, groups, per_run, 1, 1, aux_value,
                                  ROWS_LAYOUT=False, **common)
        dparams = (partial.view(runs, per_run, P).sum(1).view(runs // groups, groups, P).sum(0)
                   if need_param_grad else x.new_empty(0, dtype=torch.float32))
    return dx, dparams


triton_forward, triton_backward = define_ops("triton", _forward, _backward, torch.float32)


def triton_run(spec: FamilySpec, x: Tensor, params: list[Tensor], degree, channel_dim: int, options: dict) -> Tensor:
    # parameters in float32 whatever the input dtype (the kernels compute in float32)
    return run(triton_forward, spec, x, params, degree, channel_dim, options, torch.float32,
               (torch.float32, torch.float16, torch.bfloat16))
