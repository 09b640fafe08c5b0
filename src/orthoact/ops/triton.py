"""Triton fast path (GPU; on CPU tensors under ``TRITON_INTERPRET=1`` for testing).

The kernels live in :mod:`orthoact.ops.triton_kernels`, imported on first use so that importing
orthoact never needs Triton (``pip install 'orthoact[triton]'``). Inputs of any float dtype are read
as they are and computed in float32; parameter gradients are per-program partial sums summed on
the host side (see the kernel module).
"""

from __future__ import annotations

import functools
import importlib.util
import math
import os

import torch
from torch import Tensor

from orthoact.basis import hermite_basis
from orthoact.ops._common import apply, define_ops, implementations, n_params

BLOCK = 4096
ROWS, COLS = 256, 16  # rows-layout tile of the backward
MIN_RUN = 1024  # shorter runs of one group use the rows layout


def unavailable_reason(x: Tensor) -> str | None:
    if importlib.util.find_spec("triton") is None:
        return "triton is not installed (pip install 'orthoact[triton]')"
    if x.dtype == torch.float64:
        return "float64 inputs need float64 arithmetic; the Triton kernels compute in float32"
    if x.device.type == "cuda":
        return None
    if x.device.type == "cpu" and os.environ.get("TRITON_INTERPRET") == "1":
        return None
    return f"input is on {x.device.type}; the Triton kernels need CUDA (or TRITON_INTERPRET=1 for CPU testing)"


@functools.lru_cache(maxsize=None)
def _kernels():
    from orthoact.ops import triton_kernels

    return triton_kernels


@functools.lru_cache(maxsize=None)
def _monomial_matrix(degree: int) -> torch.Tensor:
    """C with sum_k a_k h_k(x) = sum_j (a @ C)_j x^j, in float64."""
    x = torch.linspace(-1, 1, degree + 1, dtype=torch.float64)
    vander = torch.stack([x**j for j in range(degree + 1)], -1)
    basis = torch.stack(hermite_basis(x, degree), -1)
    return torch.linalg.solve(vander, basis).T  # (n+1, n+1): row k = monomial coefficients of h_k


def _scale(family: int, degree: int) -> float:
    return math.sqrt(2.0) / degree if family == 2 else 0.0


def _forward(x: Tensor, params: Tensor, family: int, degree: int, block_len: int, groups: int) -> Tensor:
    y = torch.empty_like(x)
    n = x.numel()
    if n == 0:
        return y
    prepared = params.double() @ _monomial_matrix(degree).to(params.device) if family == 0 else params
    k = _kernels()
    grid = (math.ceil(n / BLOCK),)
    k._forward_kernel[grid](x, y, prepared.float().contiguous(), n, block_len, groups, _scale(family, degree),
                            FAMILY=family, DEGREE=degree, P=n_params(family, degree), BLOCK=BLOCK)
    return y


def _backward(grad, x, params, family, degree, block_len, groups, need_input_grad, need_param_grad):
    n = x.numel()
    P = n_params(family, degree)
    dx = torch.empty_like(x) if need_input_grad else x.new_empty(0)
    if n == 0 or not (need_input_grad or need_param_grad):
        dparams = torch.zeros(params.shape, dtype=torch.float32, device=x.device) if need_param_grad else x.new_empty(0, dtype=torch.float32)
        return dx, dparams
    k = _kernels()
    p32 = params.float().contiguous()
    dx_arg = dx if need_input_grad else x  # never written when NEED_DX is false
    common = dict(FAMILY=family, DEGREE=degree, P=P, NEED_DX=need_input_grad, NEED_DP=need_param_grad, BLOCK=BLOCK, ROWS=ROWS, COLS=COLS)
    if groups > 1 and block_len < MIN_RUN:
        period = groups * block_len
        n_rows = n // period
        grid = (math.ceil(n_rows / ROWS), math.ceil(period / COLS))
        partial = torch.empty((grid[0], period, P), dtype=torch.float32, device=x.device)
        k._backward_kernel[grid](x, grad, dx_arg, p32, partial, n, block_len, groups, 1, period, n_rows,
                                 _scale(family, degree), ROWS_LAYOUT=True, **common)
        dparams = partial.sum(0).view(groups, block_len, P).sum(1) if need_param_grad else x.new_empty(0, dtype=torch.float32)
    else:
        runs = n // block_len
        per_run = math.ceil(block_len / BLOCK)
        partial = torch.empty((runs * per_run, P), dtype=torch.float32, device=x.device)
        k._backward_kernel[(runs * per_run,)](x, grad, dx_arg, p32, partial, n, block_len, groups, per_run, 1, 1,
                                              _scale(family, degree), ROWS_LAYOUT=False, **common)
        dparams = (partial.view(runs, per_run, P).sum(1).view(runs // groups, groups, P).sum(0)
                   if need_param_grad else x.new_empty(0, dtype=torch.float32))
    return dx, dparams


triton_forward, triton_backward = define_ops("triton", _forward, _backward)


def _run(family: str, x: Tensor, params: list[Tensor], degree: int, channel_dim: int) -> Tensor:
    # parameters in float32 whatever the input dtype (the kernels compute in float32)
    return apply(triton_forward, family, x, params, degree, channel_dim, dtype=torch.float32,
                 native_dtypes=(torch.float32, torch.float16, torch.bfloat16))


IMPLEMENTATIONS = implementations(_run)
