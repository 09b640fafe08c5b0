"""Tropical rational function in Triton: F = max_k (p_k x + a_k) - max_k (q_k x + b_k).

    at the numerator's arg-max i: dF/dp_i = x, dF/da_i = 1; at the denominator's j: dF/dq_j = -x,
    dF/db_j = -1;  F' = p_i - q_j  (first arg-max on ties; +-inf inputs count as NaN).
"""

import triton
import triton.language as tl

from orthoact.ops.kernels.triton_common import accumulate


@triton.jit
def _max_affine(x, base, S0: tl.constexpr, O0: tl.constexpr, DEGREE: tl.constexpr):
    slope = tl.load(base + S0) + tl.zeros_like(x)
    best = slope * x + tl.load(base + O0)
    arg = tl.zeros_like(x)
    for k in tl.static_range(1, DEGREE + 1):
        s = tl.load(base + S0 + k)
        v = s * x + tl.load(base + O0 + k)
        better = v > best
        best = tl.where(better, v, best)
        slope = tl.where(better, s, slope)
        arg = tl.where(better, k * 1.0, arg)
    return best, slope, arg


@triton.jit
def forward(x, base, aux, DEGREE: tl.constexpr, P: tl.constexpr):
    M: tl.constexpr = DEGREE + 1
    num, sn, an = _max_affine(x, base, 0, M, DEGREE)
    den, sd, ad = _max_affine(x, base, 2 * M, 3 * M, DEGREE)
    return num - den


@triton.jit
def backward(x, g, t, base, aux, acc, poison, DEGREE: tl.constexpr, P: tl.constexpr, NEED_DP: tl.constexpr,
             EXT: tl.constexpr, ROWS_LAYOUT: tl.constexpr):
    M: tl.constexpr = DEGREE + 1
    num, sn, an = _max_affine(x, base, 0, M, DEGREE)
    den, sd, ad = _max_affine(x, base, 2 * M, 3 * M, DEGREE)
    if NEED_DP:
        gx = g * x
        for k in tl.static_range(0, M):
            acc = accumulate(acc, k, tl.where(an == k, gx, 0.0), poison, ROWS_LAYOUT)
            acc = accumulate(acc, M + k, tl.where(an == k, g, 0.0), poison, ROWS_LAYOUT)
            acc = accumulate(acc, 2 * M + k, tl.where(ad == k, -gx, 0.0), poison, ROWS_LAYOUT)
            acc = accumulate(acc, 3 * M + k, tl.where(ad == k, -g, 0.0), poison, ROWS_LAYOUT)
    return sn - sd, acc
