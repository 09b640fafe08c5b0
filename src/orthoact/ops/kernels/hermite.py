"""Hermite in Triton: F = sum_k a_k h_k, forward by Horner's rule on monomial coefficients (prepared
exactly on the host), backward by the recurrence h_{k+1} = (x h_k - h_{k-1}) / (k+1).

    dF/da_k = h_k          F' = sum_{k>=1} a_k h_{k-1}          dF'/da_k = h_{k-1}
"""

import triton
import triton.language as tl

from orthoact.basis.hermite import hermite_monomial_coefficients
from orthoact.ops.kernels.triton_common import accumulate


def prepare(params, degree):
    """Monomial coefficients of each group's series, exact in float64, as float32."""
    return hermite_monomial_coefficients(params).float()


@triton.jit
def forward(x, base, aux, DEGREE: tl.constexpr, P: tl.constexpr):
    y = tl.load(base + DEGREE) + tl.zeros_like(x)
    for i in tl.static_range(DEGREE):
        y = y * x + tl.load(base + (DEGREE - 1 - i))
    return y


@triton.jit
def forward_d(x, base, aux, DEGREE: tl.constexpr, P: tl.constexpr):
    """F and F' by Horner's rule (the linear extension)."""
    y = tl.load(base + DEGREE) + tl.zeros_like(x)
    d = tl.zeros_like(x)
    for i in tl.static_range(DEGREE):
        d = d * x + y
        y = y * x + tl.load(base + (DEGREE - 1 - i))
    return y, d


@triton.jit
def value(x, base, aux, DEGREE: tl.constexpr, P: tl.constexpr):
    """F on the raw coefficients (the backward's), by the basis' recurrence."""
    hp = tl.full(x.shape, 1.0, tl.float32)
    hc = x
    y = tl.load(base) + tl.load(base + 1) * x
    for k in tl.static_range(1, DEGREE):
        hn = (x * hc - hp) * (1.0 / (k + 1))
        y += tl.load(base + (k + 1)) * hn
        hp = hc
        hc = hn
    return y


@triton.jit
def backward(x, g, t, base, aux, acc, poison, DEGREE: tl.constexpr, P: tl.constexpr, NEED_DP: tl.constexpr,
             EXT: tl.constexpr, ROWS_LAYOUT: tl.constexpr):
    hp = tl.full(x.shape, 1.0, tl.float32)
    hc = x
    d = tl.load(base + 1) + tl.zeros_like(x)
    if NEED_DP:
        acc = accumulate(acc, 0, g, poison, ROWS_LAYOUT)
        if EXT:
            acc = accumulate(acc, 1, g * (x + t), poison, ROWS_LAYOUT)
        else:
            acc = accumulate(acc, 1, g * x, poison, ROWS_LAYOUT)
    for k in tl.static_range(1, DEGREE):
        hn = (x * hc - hp) * (1.0 / (k + 1))
        d += tl.load(base + (k + 1)) * hc
        if NEED_DP:
            if EXT:
                acc = accumulate(acc, k + 1, g * (hn + t * hc), poison, ROWS_LAYOUT)
            else:
                acc = accumulate(acc, k + 1, g * hn, poison, ROWS_LAYOUT)
        hp = hc
        hc = hn
    return d, acc
