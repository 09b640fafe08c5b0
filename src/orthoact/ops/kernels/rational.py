"""Rational (Pade) activation in Triton, PAU's safe denominators (see rational.h):

    F = P/Q, P = sum_{i<=m} a_i x^i;  A: Q = 1 + sum_j |b_j x^j|;  B: Q = 1 + |S|, S = sum_j b_j x^j
    dF/da_i = x^i/Q;  dF/db_j = -F/Q Qb_j (A: Qb_j = sgn(b_j x^j) x^j, B: sgn(S) x^j);  F' = (P' - F Q')/Q
    (linear extension) dF'/da_i = (i x^(i-1) - x^i Q'/Q)/Q;  dF'/db_j = -(Qb_j (P' - 2 F Q')/Q + F Q'b_j)/Q,
    Q'b_j = sgn(.) j x^(j-1)

Packed row [a_0..a_m, b_1..b_n]: DEGREE = m, n = P - m - 1.
"""

import triton
import triton.language as tl

from orthoact.ops.kernels.triton_common import accumulate


@triton.jit
def _sgn(t):
    return tl.where(t > 0, 1.0, 0.0) - tl.where(t < 0, 1.0, 0.0)


@triton.jit
def _terms(x, base, DEGREE: tl.constexpr, P: tl.constexpr, VERSION_A: tl.constexpr):
    """P(x), P'(x), Q(x), Q'(x) and (version B) sgn(S)."""
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
        s = tl.zeros_like(x)
        q = 1.0 + den
        dq = dden
    else:
        s = _sgn(den)
        q = 1.0 + tl.abs(den)
        dq = s * dden
    return num, dnum, q, dq, s


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
    return tl.fdiv(num, q)  # q >= 1: the fast division (2 ulp) without the IEEE slow-path call


@triton.jit
def _forward_d(x, base, DEGREE: tl.constexpr, P: tl.constexpr, VERSION_A: tl.constexpr):
    num, dnum, q, dq, s = _terms(x, base, DEGREE, P, VERSION_A)
    inv = tl.fdiv(1.0, q)
    f = num * inv
    return f, (dnum - f * dq) * inv


@triton.jit
def _backward(x, g, t, base, acc, poison, DEGREE: tl.constexpr, P: tl.constexpr, NEED_DP: tl.constexpr,
              EXT: tl.constexpr, ROWS_LAYOUT: tl.constexpr, VERSION_A: tl.constexpr):
    N: tl.constexpr = P - DEGREE - 1
    TOP: tl.constexpr = DEGREE if DEGREE > N else N
    num, dnum, q, dq, s = _terms(x, base, DEGREE, P, VERSION_A)
    inv = tl.fdiv(1.0, q)
    f = num * inv
    if NEED_DP:
        gi = g * inv
        gfi = gi * f
        gti = g * t * inv
        dq_q = dq * inv
        bfactor = (dnum - 2.0 * f * dq) * inv
        xp = tl.full(x.shape, 1.0, tl.float32)
        prev = tl.zeros_like(x)
        for j in tl.static_range(0, TOP + 1):
            if j > 0:
                prev = xp
                xp = xp * x
            if j <= DEGREE:
                if EXT:
                    acc = accumulate(acc, j, gi * xp + gti * (j * prev - xp * dq_q), poison, ROWS_LAYOUT)
                else:
                    acc = accumulate(acc, j, gi * xp, poison, ROWS_LAYOUT)
            if j >= 1:
                if j <= N:
                    if VERSION_A:
                        sj = _sgn(tl.load(base + DEGREE + j) * xp)
                    else:
                        sj = s
                    dqdb = sj * xp
                    if EXT:
                        acc = accumulate(acc, DEGREE + j, -(gfi * dqdb) - gti * (dqdb * bfactor + f * sj * j * prev),
                                         poison, ROWS_LAYOUT)
                    else:
                        acc = accumulate(acc, DEGREE + j, -(gfi * dqdb), poison, ROWS_LAYOUT)
    return inv * (dnum - f * dq), acc


@triton.jit
def forward_a(x, base, aux, DEGREE: tl.constexpr, P: tl.constexpr):
    return _forward(x, base, DEGREE, P, True)


@triton.jit
def forward_b(x, base, aux, DEGREE: tl.constexpr, P: tl.constexpr):
    return _forward(x, base, DEGREE, P, False)


@triton.jit
def forward_d_a(x, base, aux, DEGREE: tl.constexpr, P: tl.constexpr):
    return _forward_d(x, base, DEGREE, P, True)


@triton.jit
def forward_d_b(x, base, aux, DEGREE: tl.constexpr, P: tl.constexpr):
    return _forward_d(x, base, DEGREE, P, False)


@triton.jit
def backward_a(x, g, t, base, aux, acc, poison, DEGREE: tl.constexpr, P: tl.constexpr, NEED_DP: tl.constexpr,
               EXT: tl.constexpr, ROWS_LAYOUT: tl.constexpr):
    return _backward(x, g, t, base, acc, poison, DEGREE, P, NEED_DP, EXT, ROWS_LAYOUT, True)


@triton.jit
def backward_b(x, g, t, base, aux, acc, poison, DEGREE: tl.constexpr, P: tl.constexpr, NEED_DP: tl.constexpr,
               EXT: tl.constexpr, ROWS_LAYOUT: tl.constexpr):
    return _backward(x, g, t, base, acc, poison, DEGREE, P, NEED_DP, EXT, ROWS_LAYOUT, False)
