"""Rational (Pade) activation in Triton, PAU's safe denominators (see rational.h):

    F = P/Q, P = sum_{i<=m} a_i x^i;  A: Q = 1 + sum_j |b_j x^j|;  B: Q = 1 + |S|, S = sum_j b_j x^j
    dF/da_i = x^i/Q;  dF/db_j = -F/Q dQ/db_j (A: sgn(b_j x^j) x^j, B: sgn(S) x^j);  F' = (P' - F Q')/Q

Packed row [a_0..a_m, b_1..b_n]: DEGREE = m, n = P - m - 1.
"""

import triton
import triton.language as tl

from orthoact.ops.kernels.triton_common import emit


@triton.jit
def _sgn(t):
    return tl.where(t > 0, 1.0, 0.0) - tl.where(t < 0, 1.0, 0.0)


@triton.jit
def _forward(x, base, DEGREE: tl.constexpr, P: tl.constexpr, VERSION_A: tl.constexpr):
    N: tl.constexpr = P - DEGREE - 1
    TOP: tl.constexpr = DEGREE if DEGREE > N else N
    num = tl.load(base) + tl.zeros_like(x)
    den = tl.zeros_like(x)
    xp = tl.full(x.shape, 1.0, tl.float32)
    for j in tl.static_range(1, TOP + 1):
        xp = xp * x
        if j <= DEGREE:
            num += tl.load(base + j) * xp
        if j <= N:
            t = tl.load(base + DEGREE + j) * xp
            if VERSION_A:
                den += tl.abs(t)
            else:
                den += t
    if VERSION_A:
        q = 1.0 + den
    else:
        q = 1.0 + tl.abs(den)
    return num / q


@triton.jit
def _backward(x, g, base, partial_ptr, row, cols, colmask, poison, DEGREE: tl.constexpr, P: tl.constexpr,
              NEED_DP: tl.constexpr, ROWS_LAYOUT: tl.constexpr, VERSION_A: tl.constexpr):
    N: tl.constexpr = P - DEGREE - 1
    TOP: tl.constexpr = DEGREE if DEGREE > N else N
    num = tl.load(base) + tl.zeros_like(x)
    dnum = tl.zeros_like(x)
    den = tl.zeros_like(x)
    dden = tl.zeros_like(x)
    xp = tl.full(x.shape, 1.0, tl.float32)
    for j in tl.static_range(1, TOP + 1):
        prev = xp
        xp = xp * x
        if j <= DEGREE:
            aj = tl.load(base + j)
            num += aj * xp
            dnum += (j * aj) * prev
        if j <= N:
            bj = tl.load(base + DEGREE + j)
            t = bj * xp
            if VERSION_A:
                den += tl.abs(t)
                dden += _sgn(t) * (j * bj) * prev
            else:
                den += t
                dden += (j * bj) * prev
    if VERSION_A:
        q = 1.0 + den
        dq = dden
        s = tl.zeros_like(x)
    else:
        s = _sgn(den)
        q = 1.0 + tl.abs(den)
        dq = s * dden
    inv = 1.0 / q
    f = num * inv
    gi = g * inv
    if NEED_DP:
        gfi = gi * f
        xp = tl.full(x.shape, 1.0, tl.float32)
        for j in tl.static_range(0, TOP + 1):
            if j > 0:
                xp = xp * x
            if j <= DEGREE:
                emit(partial_ptr, row, cols, colmask, poison, j, gi * xp, P, ROWS_LAYOUT)
            if j >= 1:
                if j <= N:
                    if VERSION_A:
                        dqdb = _sgn(tl.load(base + DEGREE + j) * xp) * xp
                    else:
                        dqdb = s * xp
                    emit(partial_ptr, row, cols, colmask, poison, DEGREE + j, -(gfi * dqdb), P, ROWS_LAYOUT)
    return inv * (dnum - f * dq)


@triton.jit
def forward_a(x, base, aux, DEGREE: tl.constexpr, P: tl.constexpr):
    return _forward(x, base, DEGREE, P, True)


@triton.jit
def forward_b(x, base, aux, DEGREE: tl.constexpr, P: tl.constexpr):
    return _forward(x, base, DEGREE, P, False)


@triton.jit
def backward_a(x, g, base, aux, partial_ptr, row, cols, colmask, poison, DEGREE: tl.constexpr, P: tl.constexpr,
               NEED_DP: tl.constexpr, ROWS_LAYOUT: tl.constexpr):
    return _backward(x, g, base, partial_ptr, row, cols, colmask, poison, DEGREE, P, NEED_DP, ROWS_LAYOUT, True)


@triton.jit
def backward_b(x, g, base, aux, partial_ptr, row, cols, colmask, poison, DEGREE: tl.constexpr, P: tl.constexpr,
               NEED_DP: tl.constexpr, ROWS_LAYOUT: tl.constexpr):
    return _backward(x, g, base, partial_ptr, row, cols, colmask, poison, DEGREE, P, NEED_DP, ROWS_LAYOUT, False)
