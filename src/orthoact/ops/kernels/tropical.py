"""Tropical polynomial in Triton: F = s max_k (k x + a_k), s = sqrt(2)/n (``aux``).

    dF/da_k = s [k = argmax]      F' = s argmax      (first arg-max on ties)
"""

import math

import triton
import triton.language as tl

from orthoact.ops.kernels.triton_common import accumulate


def aux(params, degree):
    return math.sqrt(2.0) / degree


@triton.jit
def _argmax(x, base, DEGREE: tl.constexpr):
    best = tl.load(base) + tl.zeros_like(x)
    arg = tl.zeros_like(x)
    for k in tl.static_range(1, DEGREE + 1):
        v = k * x + tl.load(base + k)
        better = v > best
        best = tl.where(better, v, best)
        arg = tl.where(better, k * 1.0, arg)
    return best, arg


@triton.jit
def forward(x, base, aux, DEGREE: tl.constexpr, P: tl.constexpr):
    best, arg = _argmax(x, base, DEGREE)
    return aux * best


@triton.jit
def backward(x, g, t, base, aux, acc, poison, DEGREE: tl.constexpr, P: tl.constexpr, NEED_DP: tl.constexpr,
             EXT: tl.constexpr, ROWS_LAYOUT: tl.constexpr):
    best, arg = _argmax(x, base, DEGREE)
    if NEED_DP:
        for k in tl.static_range(0, DEGREE + 1):
            acc = accumulate(acc, k, tl.where(arg == k, g * aux, 0.0), poison, ROWS_LAYOUT)
    return aux * arg, acc
