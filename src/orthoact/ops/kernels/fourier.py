"""Fourier in Triton: F = b + sum_k c_k/k! cos(z_k), z_k = w_k x - phi_k.

    dF/db = 1   dF/dc_k = cos(z_k)/k!   dF/dw_k = -c_k/k! sin(z_k) x   dF/dphi_k = c_k/k! sin(z_k)
    F' = -sum_k c_k/k! w_k sin(z_k)
"""

import triton
import triton.language as tl

from orthoact.ops.kernels.triton_common import emit, inv_factorial


@triton.jit
def forward(x, base, aux, DEGREE: tl.constexpr, P: tl.constexpr):
    y = tl.load(base) + tl.zeros_like(x)
    for k in tl.static_range(1, DEGREE + 1):
        c = tl.load(base + k)
        w = tl.load(base + DEGREE + k)
        p = tl.load(base + 2 * DEGREE + k)
        y += c * inv_factorial(k) * tl.cos(w * x - p)
    return y


@triton.jit
def backward(x, g, base, aux, partial_ptr, row, cols, colmask, poison, DEGREE: tl.constexpr, P: tl.constexpr,
             NEED_DP: tl.constexpr, ROWS_LAYOUT: tl.constexpr):
    d = tl.zeros_like(x)
    if NEED_DP:
        emit(partial_ptr, row, cols, colmask, poison, 0, g, P, ROWS_LAYOUT)
    for k in tl.static_range(1, DEGREE + 1):
        f = inv_factorial(k)
        amp = tl.load(base + k) * f
        w = tl.load(base + DEGREE + k)
        z = w * x - tl.load(base + 2 * DEGREE + k)
        s = tl.sin(z)
        d -= amp * w * s
        if NEED_DP:
            gs = g * amp * s
            emit(partial_ptr, row, cols, colmask, poison, k, g * tl.cos(z) * f, P, ROWS_LAYOUT)
            emit(partial_ptr, row, cols, colmask, poison, DEGREE + k, -(gs * x), P, ROWS_LAYOUT)
            emit(partial_ptr, row, cols, colmask, poison, 2 * DEGREE + k, gs, P, ROWS_LAYOUT)
    return d
