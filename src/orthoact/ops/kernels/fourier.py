"""Fourier in Triton: F = b + sum_k c_k/k! cos(z_k), z_k = w_k x - phi_k, one shared sin/cos per harmonic.

    dF/db = 1   dF/dc_k = cos(z_k)/k!   dF/dw_k = -c_k/k! sin(z_k) x   dF/dphi_k = c_k/k! sin(z_k)
    F' = -sum_k c_k/k! w_k sin(z_k)
    dF'/dc_k = -w_k sin(z_k)/k!   dF'/dw_k = -c_k/k! (sin z_k + w_k x cos z_k)   dF'/dphi_k = c_k/k! w_k cos z_k
"""

import triton
import triton.language as tl

from orthoact.ops.kernels.triton_common import accumulate, inv_factorial, sincos


@triton.jit
def forward(x, base, aux, DEGREE: tl.constexpr, P: tl.constexpr):
    y = tl.load(base) + tl.zeros_like(x)
    for k in tl.static_range(1, DEGREE + 1):
        s, c = sincos(tl.load(base + DEGREE + k) * x - tl.load(base + 2 * DEGREE + k))
        y += (tl.load(base + k) * inv_factorial(k)) * c
    return y


@triton.jit
def forward_d(x, base, aux, DEGREE: tl.constexpr, P: tl.constexpr):
    y = tl.load(base) + tl.zeros_like(x)
    d = tl.zeros_like(x)
    for k in tl.static_range(1, DEGREE + 1):
        w = tl.load(base + DEGREE + k)
        amp = tl.load(base + k) * inv_factorial(k)
        s, c = sincos(w * x - tl.load(base + 2 * DEGREE + k))
        y += amp * c
        d -= (amp * w) * s
    return y, d


@triton.jit
def backward(x, g, t, base, aux, acc, poison, DEGREE: tl.constexpr, P: tl.constexpr, NEED_DP: tl.constexpr,
             EXT: tl.constexpr, ROWS_LAYOUT: tl.constexpr):
    d = tl.zeros_like(x)
    if NEED_DP:
        acc = accumulate(acc, 0, g, poison, ROWS_LAYOUT)
    for k in tl.static_range(1, DEGREE + 1):
        f = inv_factorial(k)
        amp = tl.load(base + k) * f
        w = tl.load(base + DEGREE + k)
        s, c = sincos(w * x - tl.load(base + 2 * DEGREE + k))
        d -= (amp * w) * s
        if NEED_DP:
            gs = g * amp * s
            if EXT:
                gt = g * t
                wc = w * c
                acc = accumulate(acc, k, (g * c - gt * w * s) * f, poison, ROWS_LAYOUT)
                acc = accumulate(acc, DEGREE + k, -(gs * x) - gt * amp * (s + x * wc), poison, ROWS_LAYOUT)
                acc = accumulate(acc, 2 * DEGREE + k, gs + gt * amp * wc, poison, ROWS_LAYOUT)
            else:
                acc = accumulate(acc, k, g * c * f, poison, ROWS_LAYOUT)
                acc = accumulate(acc, DEGREE + k, -(gs * x), poison, ROWS_LAYOUT)
                acc = accumulate(acc, 2 * DEGREE + k, gs, poison, ROWS_LAYOUT)
    return d, acc
