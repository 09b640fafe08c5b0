"""Triton drivers shared by every family (imported only when the Triton backend runs).

Forward: one program per BLOCK elements reads x, writes y = F(x). Backward: reads x and dy, writes
dx = dy F'(x) and per-program partial sums of dy * dF/dtheta_k in float32 into a small buffer that
the host sums afterwards (no atomics, nothing to reset: no autotuning). Only x is kept between the
two: the basis is recomputed. All arithmetic is float32 whatever the input dtype; offsets are
64-bit, so tensors above 2^31 elements are fine.

A family supplies two Triton functions, passed to the drivers as constexpr arguments:

    forward(x, base, aux, DEGREE, P) -> F(x)
    backward(x, g, base, aux, partial_ptr, row, cols, colmask, poison, DEGREE, P, NEED_DP, ROWS_LAYOUT) -> F'(x)

``base`` points at the element's parameter row (a block of pointers in the forward and the rows
layout, one pointer in the runs layout); the backward reports each parameter's contribution
``g dF/dtheta_k`` through :func:`emit`.

Grouping: element i uses parameter row (i // block_len) % groups. The backward has two layouts, named
as in the C++ kernels: "runs" (one group per program: long runs of a group) and "rows" (a 2-D tile
of the (rows, period) view, period = groups * block_len, reduced over its rows: short runs, e.g.
per-channel parameters with channels last).

Non-finite inputs (as the reference): with NAN_AT_INF, +-inf is treated as NaN; a NaN input gives a
NaN output and input gradient, and ``poison`` (NaN at NaN inputs, 0 elsewhere) is added to every
parameter's contribution.
"""

from __future__ import annotations

import triton
import triton.language as tl


@triton.jit
def emit(partial_ptr, row, cols, colmask, poison, k: tl.constexpr, contribution, P: tl.constexpr,
         ROWS_LAYOUT: tl.constexpr):
    """Store the program's partial sum of parameter k's gradient."""
    c = contribution + poison
    if ROWS_LAYOUT:
        tl.store(partial_ptr + row * P + k + cols * P, tl.sum(c, axis=0), mask=colmask)
    else:
        tl.store(partial_ptr + row * P + k, tl.sum(c, axis=0))


@triton.jit
def inv_factorial(k: tl.constexpr):
    f = 1.0
    for j in tl.static_range(2, k + 1):
        f = f * j
    return 1.0 / f


@triton.jit
def forward_kernel(
    x_ptr,  # input, any float dtype, contiguous
    y_ptr,  # output, same dtype
    params_ptr,  # (groups, P) float32, forward-prepared (Hermite: monomial coefficients)
    N,  # number of elements
    block_len,  # elements per run of one group
    groups,
    aux,  # a family scalar (tropical: sqrt(2) / n)
    FWD: tl.constexpr,  # the family's forward function
    NAN_AT_INF: tl.constexpr,
    DEGREE: tl.constexpr,
    P: tl.constexpr,
    BLOCK: tl.constexpr,
):
    pid = tl.program_id(0).to(tl.int64)
    offs = pid * BLOCK + tl.arange(0, BLOCK)
    mask = offs < N
    x = tl.load(x_ptr + offs, mask=mask, other=0.0).to(tl.float32)
    if NAN_AT_INF:
        x = tl.where(tl.abs(x) < float("inf"), x, float("nan"))
    base = params_ptr + ((offs // block_len) % groups) * P  # this element's parameter row
    y = FWD(x, base, aux, DEGREE, P)
    y = tl.where(x != x, x, y)
    tl.store(y_ptr + offs, y.to(y_ptr.dtype.element_ty), mask=mask)


@triton.jit
def backward_kernel(
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
    aux,
    BWD: tl.constexpr,  # the family's backward function
    NAN_AT_INF: tl.constexpr,
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
    if NAN_AT_INF:
        x = tl.where(tl.abs(x) < float("inf"), x, float("nan"))
    poison = tl.where(x != x, x, 0.0)
    d = BWD(x, g, base, aux, partial_ptr, row, cols, colmask, poison, DEGREE, P, NEED_DP, ROWS_LAYOUT)
    if NEED_DX:
        dx = tl.where(x != x, x, g * d)
        tl.store(dx_ptr + offs, dx.to(dx_ptr.dtype.element_ty), mask=mask)
