"""Triton drivers shared by every family (imported only when the Triton backend runs).

Two layouts of the contiguous input, element i using parameter row (i // block_len) % groups (named
as in the C++ kernels):

* **runs** (one group per long run, e.g. ``groups=1``): a tile is BLOCK consecutive elements of one
  run, so a program reads its parameters as scalars;
* **rows** (short runs, e.g. per-channel parameters with channels last): the input is viewed as
  ``(rows, period)``, ``period = groups * block_len``; a tile is ``ROWS x COLS`` and each column reads
  its own parameter row.

Forward: one program per tile reads x, writes y = F(u) (the input map below). Backward: a
**persistent grid** (a few programs per multiprocessor, see ``orthoact.ops.triton_config``): each
program loops over its tiles, writes dx = dy dy/dx, and accumulates dy * dy/dtheta_k of every
parameter into an fp32 register vector (one lane per parameter; per column in the rows layout),
stored once as the program's partial row; the host sums the partial rows. No atomics: a given input
on a given device gives bit-identical gradients on every run. Only x is kept between forward and
backward: the basis is recomputed. All arithmetic is float32 whatever the input dtype; offsets are
64-bit.

Input map (see ``orthoact/inputs.py``): with CLAMP, u = limit (2 sigmoid(x) - 1), the limit in the
column after the family's P, du/dx = limit (1 - s^2) / 2 and du/dlimit = s; with DOMAIN, c = clamp(u,
lo, hi), y = F(c) + (u - c) F'(c), dy/du = F'(c), and a parameter's gradient takes
(u - c) dF'/dtheta(c) on top.

A family supplies Triton functions, passed to the drivers as constexpr arguments:

    forward(x, base, aux, DEGREE, P) -> F(x)
    forward_d(x, base, aux, DEGREE, P) -> (F(x), F'(x))            (families that take a domain)
    backward(x, g, t, base, aux, acc, poison, DEGREE, P, NEED_DP, EXT, ROWS_LAYOUT) -> (F'(x), acc)
    value(x, base, aux, DEGREE, P) -> F(x) on the backward's (raw) parameters   (the forward's by default)

``base`` points at the element's parameter row (a scalar pointer in the runs layout, a ``[1, COLS]``
block in the rows layout); the backward adds each parameter's contribution ``g dF/dtheta_k`` (with
EXT, ``g (dF/dtheta_k + t dF'/dtheta_k)``) to ``acc`` with :func:`accumulate`. With WANT_Y the
backward also writes the forward's ``y`` from the same tile (``value``, mapped as the forward maps
it), for orthoact.nn's recompute MLP.

Non-finite inputs (as the reference): with NAN_AT_INF, +-inf is treated as NaN; a NaN input gives a
NaN output and input gradient, and ``poison`` (NaN at NaN inputs, 0 elsewhere) is added to every
parameter's contribution.
"""

from __future__ import annotations

import triton
import triton.language as tl


@triton.jit
def accumulate(acc, k: tl.constexpr, contribution, poison, ROWS_LAYOUT: tl.constexpr):
    """``acc`` with parameter k's tile sum of ``contribution`` added (per column in the rows layout)."""
    c = contribution + poison
    lane = tl.arange(0, acc.shape[0])
    if ROWS_LAYOUT:
        out = tl.where((lane == k)[:, None], acc + tl.sum(c, axis=0)[None, :], acc)
    else:
        out = tl.where(lane == k, acc + tl.sum(c, axis=0), acc)
    return out


@triton.jit
def inv_factorial(k: tl.constexpr):
    f = 1.0
    for j in tl.static_range(2, k + 1):
        f = f * j
    return 1.0 / f


@triton.jit
def sincos(z):
    """sin and cos of float32 z with one shared range reduction (Cody-Waite by pi/2 in two FMA steps)
    and Cephes' minimax polynomials on [-pi/4, pi/4]: a few ulp (as libm's up to the rounding of z
    itself; the C++ kernels reduce by pi instead, within about one ulp of 1), and far less code than
    two libdevice calls."""
    zq = z * 0.6366197723675814  # z / (pi / 2)
    q = tl.where(tl.abs(zq) < 4194304.0, (zq + 12582912.0) - 12582912.0, zq)  # round to nearest (above 2^22: as is)
    r = tl.fma(q, -1.5707963705062866, z)
    r = tl.fma(q, 4.371139000186241e-08, r)
    r2 = r * r
    sp = r + r * r2 * (-1.6666654611e-1 + r2 * (8.3321608736e-3 + r2 * -1.9515295891e-4))
    cp = 1.0 - 0.5 * r2 + r2 * r2 * (4.166664568298827e-2 + r2 * (-1.388731625493765e-3 + r2 * 2.443315711809948e-5))
    quadrant = (q - 4.0 * tl.floor(q * 0.25)).to(tl.int32)  # q mod 4, no integer overflow
    odd = (quadrant & 1) != 0
    s = tl.where(odd, cp, sp)
    c = tl.where(odd, sp, cp)
    s = tl.where((quadrant & 2) != 0, -s, s)
    c = tl.where(((quadrant + 1) & 2) != 0, -c, c)
    return s, c


@triton.jit
def _runs_tile(run, chunk, block_len, N, BLOCK: tl.constexpr):
    """Offsets (64-bit) and mask of chunk ``chunk`` of run ``run`` (32-bit indices: no 64-bit division)."""
    start = run.to(tl.int64) * block_len + chunk.to(tl.int64) * BLOCK
    offs = start + tl.arange(0, BLOCK)
    mask = (offs < (run.to(tl.int64) + 1) * block_len) & (offs < N)
    return offs, mask


@triton.jit
def _rows_tile(row_block, cols, period, n_rows, ROWS: tl.constexpr):
    """Offsets (64-bit) and mask of a rows-layout tile; ``cols`` are 32-bit column indices."""
    r = row_block * ROWS + tl.arange(0, ROWS)
    mask = (r[:, None] < n_rows) & (cols < period)[None, :]
    return r.to(tl.int64)[:, None] * period + cols[None, :], mask


@triton.jit
def _mapped(x, base, P: tl.constexpr, CLAMP: tl.constexpr):
    """u (the value the family sees) and s = 2 sigmoid(x) - 1 (with CLAMP)."""
    if CLAMP:
        s = 2.0 * tl.fdiv(1.0, 1.0 + tl.exp(-x)) - 1.0  # 2 sigmoid(x) - 1, a division without its slow-path call
        u = tl.load(base + P) * s
    else:
        s = x
        u = x
    return u, s


@triton.jit
def _forward_values(x, base, aux, lo, hi, FWD: tl.constexpr, FWD_D: tl.constexpr, NAN_AT_INF: tl.constexpr,
                    DEGREE: tl.constexpr, P: tl.constexpr, CLAMP: tl.constexpr, DOMAIN: tl.constexpr):
    if NAN_AT_INF:
        x = tl.where(tl.abs(x) < float("inf"), x, float("nan"))
    u, s = _mapped(x, base, P, CLAMP)
    if DOMAIN:
        c = tl.minimum(tl.maximum(u, lo), hi)
        f, d = FWD_D(c, base, aux, DEGREE, P)
        y = f + (u - c) * d
    else:
        y = FWD(u, base, aux, DEGREE, P)
    return tl.where(x != x, x, y)


@triton.jit
def forward_kernel(
    x_ptr,  # input, any float dtype, contiguous
    y_ptr,  # output, same dtype
    params_ptr,  # (groups, P + CLAMP) float32, forward-prepared (Hermite: monomial coefficients)
    N,  # number of elements
    block_len,  # elements per run of one group
    groups,
    tiles_per_run,  # runs layout
    period,  # rows layout: groups * block_len
    n_rows,  # rows layout: N // period
    aux,  # a family scalar (tropical: sqrt(2) / n)
    lo,  # domain (with DOMAIN)
    hi,
    FWD: tl.constexpr,  # the family's forward function
    FWD_D: tl.constexpr,  # ... with its derivative (DOMAIN)
    NAN_AT_INF: tl.constexpr,
    DEGREE: tl.constexpr,
    P: tl.constexpr,  # the family's columns (a clamp limit follows)
    CLAMP: tl.constexpr,
    DOMAIN: tl.constexpr,
    ROWS_LAYOUT: tl.constexpr,
    BLOCK: tl.constexpr,  # runs layout tile
    ROWS: tl.constexpr,  # rows layout tile
    COLS: tl.constexpr,
):
    STRIDE: tl.constexpr = P + CLAMP
    if ROWS_LAYOUT:
        # a 1-D grid of (row block, column block) tiles: CUDA caps the second grid dimension at 65535
        col_blocks = (period + COLS - 1) // COLS
        cols = (tl.program_id(0) % col_blocks) * COLS + tl.arange(0, COLS)  # 32-bit: no 64-bit division below
        offs, mask = _rows_tile(tl.program_id(0) // col_blocks, cols, period, n_rows, ROWS)
        # columns past the period are masked; clamping keeps their parameter reads in bounds
        base = params_ptr + (tl.minimum(cols, period - 1) // block_len)[None, :] * STRIDE
    else:
        tile = tl.program_id(0)
        run = tile // tiles_per_run
        offs, mask = _runs_tile(run, tile % tiles_per_run, block_len, N, BLOCK)
        base = params_ptr + (run % groups) * STRIDE  # one group per tile: scalar loads
    x = tl.load(x_ptr + offs, mask=mask, other=0.0).to(tl.float32)
    y = _forward_values(x, base, aux, lo, hi, FWD, FWD_D, NAN_AT_INF, DEGREE, P, CLAMP, DOMAIN)
    tl.store(y_ptr + offs, y.to(y_ptr.dtype.element_ty), mask=mask)


@triton.jit
def _backward_tile(x, g, base, acc, aux, lo, hi, BWD: tl.constexpr, VALUE: tl.constexpr, NAN_AT_INF: tl.constexpr,
                   DEGREE: tl.constexpr, P: tl.constexpr, CLAMP: tl.constexpr, DOMAIN: tl.constexpr,
                   NEED_DP: tl.constexpr, WANT_Y: tl.constexpr, ROWS_LAYOUT: tl.constexpr, y_ptr, offs, mask):
    """dx of one tile and ``acc`` with its parameter contributions; with WANT_Y it stores y, before the
    backward's sums where it can (nothing kept live through them), after them with a domain (F'(c))."""
    if NAN_AT_INF:
        x = tl.where(tl.abs(x) < float("inf"), x, float("nan"))
    poison = tl.where(x != x, x, 0.0)
    u, s = _mapped(x, base, P, CLAMP)
    if DOMAIN:
        c = tl.minimum(tl.maximum(u, lo), hi)
        f = VALUE(c, base, aux, DEGREE, P) if WANT_Y else c
        d, acc = BWD(c, g, u - c, base, aux, acc, poison, DEGREE, P, NEED_DP, True, ROWS_LAYOUT)
        if WANT_Y:  # the linear extension: F(c) + (u - c) F'(c)
            tl.store(y_ptr + offs, tl.where(x != x, x, f + (u - c) * d).to(y_ptr.dtype.element_ty), mask=mask)
    else:
        if WANT_Y:
            tl.store(y_ptr + offs, tl.where(x != x, x, VALUE(u, base, aux, DEGREE, P)).to(y_ptr.dtype.element_ty),
                     mask=mask)
        d, acc = BWD(u, g, u, base, aux, acc, poison, DEGREE, P, NEED_DP, False, ROWS_LAYOUT)
    du = g * d
    if CLAMP:
        if NEED_DP:
            acc = accumulate(acc, P, du * s, poison, ROWS_LAYOUT)
        du = du * (tl.load(base + P) * 0.5 * (1.0 - s * s))
    return tl.where(x != x, x, du), acc


@triton.jit
def backward_kernel(
    x_ptr,
    g_ptr,  # upstream gradient dy, contiguous like x
    dx_ptr,  # input gradient (written when NEED_DX)
    y_ptr,  # the forward's output (written when WANT_Y)
    params_ptr,  # (groups, P + CLAMP) float32, raw parameters
    partial_ptr,  # float32 partial sums, one row of P + CLAMP per program (rows layout: per column)
    N,
    block_len,
    groups,
    tiles_per_run,  # runs layout: tiles of one run
    tiles_per_group,  # runs layout: tiles of one group (its runs one after another)
    period,  # rows layout: groups * block_len
    n_rows,  # rows layout: N // period
    n_row_blocks,  # rows layout: ceil(n_rows / ROWS)
    aux,
    lo,
    hi,
    BWD: tl.constexpr,  # the family's backward function
    VALUE: tl.constexpr,  # F on these parameters (WANT_Y)
    NAN_AT_INF: tl.constexpr,
    DEGREE: tl.constexpr,
    P: tl.constexpr,
    P_PAD: tl.constexpr,  # a power of 2 >= P + CLAMP (the accumulator's lanes)
    CLAMP: tl.constexpr,
    DOMAIN: tl.constexpr,
    NEED_DX: tl.constexpr,
    NEED_DP: tl.constexpr,
    WANT_Y: tl.constexpr,
    ROWS_LAYOUT: tl.constexpr,
    BLOCK: tl.constexpr,
    ROWS: tl.constexpr,
    COLS: tl.constexpr,
):
    STRIDE: tl.constexpr = P + CLAMP
    lane = tl.arange(0, P_PAD)
    if ROWS_LAYOUT:  # grid (column blocks, row programs): the many column blocks in the uncapped first dimension
        cols = tl.program_id(0) * COLS + tl.arange(0, COLS)  # 32-bit: no 64-bit division below
        base = params_ptr + (tl.minimum(cols, period - 1) // block_len)[None, :] * STRIDE
        acc = tl.zeros((P_PAD, COLS), tl.float32)
        for row_block in range(tl.program_id(1), n_row_blocks, tl.num_programs(1)):
            offs, mask = _rows_tile(row_block, cols, period, n_rows, ROWS)
            x = tl.load(x_ptr + offs, mask=mask, other=0.0).to(tl.float32)
            g = tl.load(g_ptr + offs, mask=mask, other=0.0).to(tl.float32)  # zero outside: adds nothing
            dx, acc = _backward_tile(x, g, base, acc, aux, lo, hi, BWD, VALUE, NAN_AT_INF, DEGREE, P, CLAMP, DOMAIN,
                                     NEED_DP, WANT_Y, True, y_ptr, offs, mask)
            if NEED_DX:
                tl.store(dx_ptr + offs, dx.to(dx_ptr.dtype.element_ty), mask=mask)
        if NEED_DP:  # partial[program, column, k]
            out = partial_ptr + (tl.program_id(1).to(tl.int64) * period + cols)[None, :] * STRIDE + lane[:, None]
            tl.store(out, acc, mask=(lane < STRIDE)[:, None] & (cols < period)[None, :])
    else:
        group = tl.program_id(1)
        base = params_ptr + group * STRIDE  # every tile of this program is of this group: scalar loads
        acc = tl.zeros((P_PAD,), tl.float32)
        step = tl.num_programs(0)
        for t in range(tl.program_id(0), tiles_per_group, step):
            # tile t of the group: chunk t % tiles_per_run of run group + (t // tiles_per_run) * groups
            offs, mask = _runs_tile(group + (t // tiles_per_run) * groups, t % tiles_per_run, block_len, N, BLOCK)
            x = tl.load(x_ptr + offs, mask=mask, other=0.0).to(tl.float32)
            g = tl.load(g_ptr + offs, mask=mask, other=0.0).to(tl.float32)
            dx, acc = _backward_tile(x, g, base, acc, aux, lo, hi, BWD, VALUE, NAN_AT_INF, DEGREE, P, CLAMP, DOMAIN,
                                     NEED_DP, WANT_Y, False, y_ptr, offs, mask)
            if NEED_DX:
                tl.store(dx_ptr + offs, dx.to(dx_ptr.dtype.element_ty), mask=mask)
        if NEED_DP:  # partial[group, program, k] (indices read again: nothing kept live across the loop)
            row = tl.program_id(1) * tl.num_programs(0) + tl.program_id(0)
            tl.store(partial_ptr + row.to(tl.int64) * STRIDE + lane, acc, mask=lane < STRIDE)
