"""Triton kernels of the four families (imported only when the Triton backend runs).

Forward: one program per BLOCK elements reads x, writes y = F(x). Backward: reads x and dy, writes
dx = dy F'(x) and per-program partial sums of dy * dF/dtheta_k in float32 into a small buffer that
the host sums afterwards (no atomics, nothing to reset: no autotuning). Only x is kept between the
two: the basis is recomputed. All arithmetic is float32 whatever the input dtype; offsets are
64-bit, so tensors above 2^31 elements are fine.

Derivatives (g = dy, per element):
  hermite   F = sum a_k h_k;           dF/da_k = h_k;          F' = sum_{k>=1} a_k h_{k-1}
  fourier   F = b + sum c_k/k! cos z_k, z_k = w_k x - phi_k;   dF/db = 1, dF/dc_k = cos z_k / k!,
            dF/dw_k = -c_k/k! sin z_k x, dF/dphi_k = c_k/k! sin z_k;  F' = -sum c_k/k! w_k sin z_k
  tropical  F = s max_k (k x + a_k), s = sqrt(2)/n;   dF/da_k = s [k = argmax];   F' = s argmax
  rational  F = max_k (p_k x + a_k) - max_k (q_k x + b_k);  dF/dp_i = x, dF/da_i = 1 at the numerator's
            argmax i; dF/dq_j = -x, dF/db_j = -1 at the denominator's argmax j;  F' = p_i - q_j

Grouping: element i uses parameter row (i // block_len) % groups. The forward gathers each
element's row. The backward has two layouts: "runs" (one group per program: long runs of a group)
and "rows" (a 2-D tile of the (rows, period) view, period = groups * block_len, reduced over its
rows: short runs, e.g. per-channel parameters with channels last).
"""

from __future__ import annotations

import triton
import triton.language as tl

HERMITE, FOURIER, TROPICAL, RATIONAL = 0, 1, 2, 3


@triton.jit
def _inv_factorial(k: tl.constexpr):
    f = 1.0
    for j in tl.static_range(2, k + 1):
        f = f * j
    return 1.0 / f


@triton.jit
def _forward_kernel(
    x_ptr,  # input, any float dtype, contiguous
    y_ptr,  # output, same dtype
    params_ptr,  # (groups, P) float32, forward-prepared (Hermite: monomial coefficients)
    N,  # number of elements
    block_len,  # elements per run of one group
    groups,
    scale,  # tropical: sqrt(2) / n
    FAMILY: tl.constexpr,
    DEGREE: tl.constexpr,
    P: tl.constexpr,
    BLOCK: tl.constexpr,
):
    pid = tl.program_id(0).to(tl.int64)
    offs = pid * BLOCK + tl.arange(0, BLOCK)
    mask = offs < N
    x = tl.load(x_ptr + offs, mask=mask, other=0.0).to(tl.float32)
    base = params_ptr + ((offs // block_len) % groups) * P  # this element's parameter row
    if FAMILY == 0:  # Horner's rule on the monomial coefficients
        y = tl.load(base + DEGREE)
        for i in tl.static_range(DEGREE):
            y = y * x + tl.load(base + (DEGREE - 1 - i))
    elif FAMILY == 1:
        y = tl.load(base)
        for k in tl.static_range(1, DEGREE + 1):
            c = tl.load(base + k)
            w = tl.load(base + DEGREE + k)
            p = tl.load(base + 2 * DEGREE + k)
            y += c * _inv_factorial(k) * tl.cos(w * x - p)
    elif FAMILY == 2:
        best = tl.load(base)
        for k in tl.static_range(1, DEGREE + 1):
            v = k * x + tl.load(base + k)
            best = tl.where(v > best, v, best)
        y = tl.where(x != x, x, scale * best)
    else:
        num = tl.load(base) * x + tl.load(base + (DEGREE + 1))
        den = tl.load(base + 2 * (DEGREE + 1)) * x + tl.load(base + 3 * (DEGREE + 1))
        for k in tl.static_range(1, (DEGREE + 1)):
            vn = tl.load(base + k) * x + tl.load(base + (DEGREE + 1) + k)
            vd = tl.load(base + 2 * (DEGREE + 1) + k) * x + tl.load(base + 3 * (DEGREE + 1) + k)
            num = tl.where(vn > num, vn, num)
            den = tl.where(vd > den, vd, den)
        y = num - den
    tl.store(y_ptr + offs, y.to(y_ptr.dtype.element_ty), mask=mask)


@triton.jit
def _emit(partial_ptr, row, cols, colmask, k: tl.constexpr, contribution, P: tl.constexpr, ROWS_LAYOUT: tl.constexpr):
    """Store the program's partial sum of one parameter's gradient."""
    if ROWS_LAYOUT:
        tl.store(partial_ptr + row * P + k + cols * P, tl.sum(contribution, axis=0), mask=colmask)
    else:
        tl.store(partial_ptr + row * P + k, tl.sum(contribution, axis=0))


@triton.jit
def _backward_kernel(
    x_ptr,
    g_ptr,  # upstream gradient dy, contiguous like x
    dx_ptr,  # input gradient (written when NEED_DX)
    params_ptr,  # (groups, P) float32, raw parameters
    partial_ptr,  # float32 partial sums: runs (programs, P); rows (row_blocks, period, P)
    N,
    block_len,
    groups,
    programs_per_run,  # runs layout
    period,  # rows layout: groups * block_len
    n_rows,  # rows layout: N // period
    scale,
    FAMILY: tl.constexpr,
    DEGREE: tl.constexpr,
    P: tl.constexpr,
    NEED_DX: tl.constexpr,
    NEED_DP: tl.constexpr,
    ROWS_LAYOUT: tl.constexpr,
    BLOCK: tl.constexpr,  # runs layout
    ROWS: tl.constexpr,  # rows layout tile
    COLS: tl.constexpr,
):
    if ROWS_LAYOUT:
        rb = tl.program_id(0).to(tl.int64)
        cb = tl.program_id(1).to(tl.int64)
        r = rb * ROWS + tl.arange(0, ROWS)
        cols = cb * COLS + tl.arange(0, COLS)
        colmask = cols < period
        mask = (r[:, None] < n_rows) & colmask[None, :]
        offs = r[:, None] * period + cols[None, :]
        # columns past the period are masked; clamping keeps their parameter reads in bounds
        base = params_ptr + (tl.minimum(cols, period - 1) // block_len)[None, :] * P
        row = rb * period  # partial row of this program's first column
    else:
        pid = tl.program_id(0).to(tl.int64)
        run = pid // programs_per_run
        start = run * block_len + (pid % programs_per_run) * BLOCK
        offs = start + tl.arange(0, BLOCK)
        mask = (offs < (run + 1) * block_len) & (offs < N)
        base = params_ptr + (run % groups) * P  # one group per program: scalar loads
        row = pid
        cols = tl.arange(0, 1)
        colmask = cols < 1
    x = tl.load(x_ptr + offs, mask=mask, other=0.0).to(tl.float32)
    g = tl.load(g_ptr + offs, mask=mask, other=0.0).to(tl.float32)  # zero outside: adds nothing

    if FAMILY == 0:
        hp = tl.full(x.shape, 1.0, tl.float32)
        hc = x
        d = tl.load(base + 1) + 0.0 * x
        if NEED_DP:
            _emit(partial_ptr, row, cols, colmask, 0, g, P, ROWS_LAYOUT)
            _emit(partial_ptr, row, cols, colmask, 1, g * x, P, ROWS_LAYOUT)
        for k in tl.static_range(1, DEGREE):
            hn = (x * hc - hp) * (1.0 / (k + 1))
            d += tl.load(base + (k + 1)) * hc
            if NEED_DP:
                _emit(partial_ptr, row, cols, colmask, k + 1, g * hn, P, ROWS_LAYOUT)
            hp = hc
            hc = hn
    elif FAMILY == 1:
        d = 0.0 * x
        if NEED_DP:
            _emit(partial_ptr, row, cols, colmask, 0, g, P, ROWS_LAYOUT)
        for k in tl.static_range(1, DEGREE + 1):
            f = _inv_factorial(k)
            amp = tl.load(base + k) * f
            w = tl.load(base + DEGREE + k)
            z = w * x - tl.load(base + 2 * DEGREE + k)
            s = tl.sin(z)
            d -= amp * w * s
            if NEED_DP:
                gs = g * amp * s
                _emit(partial_ptr, row, cols, colmask, k, g * tl.cos(z) * f, P, ROWS_LAYOUT)
                _emit(partial_ptr, row, cols, colmask, DEGREE + k, -(gs * x), P, ROWS_LAYOUT)
                _emit(partial_ptr, row, cols, colmask, 2 * DEGREE + k, gs, P, ROWS_LAYOUT)
    elif FAMILY == 2:
        best = tl.load(base) + 0.0 * x
        arg = 0.0 * x
        for k in tl.static_range(1, DEGREE + 1):
            v = k * x + tl.load(base + k)
            better = v > best
            best = tl.where(better, v, best)
            arg = tl.where(better, k * 1.0, arg)
        d = tl.where(x != x, x, scale * arg)
        if NEED_DP:
            for k in tl.static_range(0, DEGREE + 1):
                _emit(partial_ptr, row, cols, colmask, k, tl.where(arg == k, g * scale, 0.0), P, ROWS_LAYOUT)
    else:
        sn = tl.load(base) + 0.0 * x
        sd = tl.load(base + 2 * (DEGREE + 1)) + 0.0 * x
        num = sn * x + tl.load(base + (DEGREE + 1))
        den = sd * x + tl.load(base + 3 * (DEGREE + 1))
        an = 0.0 * x
        ad = 0.0 * x
        for k in tl.static_range(1, (DEGREE + 1)):
            pk = tl.load(base + k)
            qk = tl.load(base + 2 * (DEGREE + 1) + k)
            vn = pk * x + tl.load(base + (DEGREE + 1) + k)
            vd = qk * x + tl.load(base + 3 * (DEGREE + 1) + k)
            bn = vn > num
            bd = vd > den
            num = tl.where(bn, vn, num)
            sn = tl.where(bn, pk, sn)
            an = tl.where(bn, k * 1.0, an)
            den = tl.where(bd, vd, den)
            sd = tl.where(bd, qk, sd)
            ad = tl.where(bd, k * 1.0, ad)
        d = sn - sd
        if NEED_DP:
            gx = g * x
            for k in tl.static_range(0, (DEGREE + 1)):
                _emit(partial_ptr, row, cols, colmask, k, tl.where(an == k, gx, 0.0), P, ROWS_LAYOUT)
                _emit(partial_ptr, row, cols, colmask, (DEGREE + 1) + k, tl.where(an == k, g, 0.0), P, ROWS_LAYOUT)
                _emit(partial_ptr, row, cols, colmask, 2 * (DEGREE + 1) + k, tl.where(ad == k, -gx, 0.0), P, ROWS_LAYOUT)
                _emit(partial_ptr, row, cols, colmask, 3 * (DEGREE + 1) + k, tl.where(ad == k, -g, 0.0), P, ROWS_LAYOUT)
    if NEED_DX:
        if FAMILY == 2:
            dx = tl.where(x != x, x, g * d)
        else:
            dx = g * d
        tl.store(dx_ptr + offs, dx.to(dx_ptr.dtype.element_ty), mask=mask)
