"""How the Triton kernels are launched: tile sizes, warps and grids, in one place for the launcher
(:mod:`orthoact.ops.triton`) and the resource report (``benchmarks/triton_resources.py``), so the two
cannot drift apart. Plain Python: importing it needs no Triton.

Tiles hold up to 8 elements per thread (about what PyTorch inductor's pointwise kernels hold):
registers stay at most 64 in the forward and 128 in the backward, with no spills, up to degree 16
(``python benchmarks/triton_resources.py`` measures it for sm_80 and sm_90). The backward runs on a
persistent grid of :func:`programs` programs, each reducing the parameter gradients of its tiles in
registers into one partial row.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

#: contract multiplies and adds to FMAs (Triton's default, stated so Triton 3.9+ need not warn)
FP_FUSION = True
#: runs of one group shorter than this use the rows layout
MIN_RUN = 1024
#: programs of the persistent backward per multiprocessor
PROGRAMS_PER_SM = 4
#: programs of the persistent backward where no device says how many multiprocessors it has
#: (CPU tensors under the Triton interpreter)
DEFAULT_PROGRAMS = 8


@dataclass(frozen=True)
class Tiles:
    """Tile and warps of one kernel: ``BLOCK`` elements (runs layout) or ``ROWS x COLS`` (rows)."""

    block: int
    rows: int
    cols: int
    num_warps: int


def tiles(pass_: str, elements: int = 8, mapped: bool = False) -> Tiles:
    """The tile of a kernel at 4 warps. A plain forward holds ``elements`` per thread (the family's
    :attr:`~orthoact.declarations.KernelSpec.triton_elements`, 8 unless its formula is heavy); a
    forward with an input map (domain or clamp) half of that, as it evaluates F and F' and the map
    together; the backward 4, as it keeps the recurrence and the parameter contributions live."""
    per_thread = max(1, (elements // 2 if mapped else elements) if pass_ == "forward" else 4)
    block = per_thread * 32 * 4
    if block & (block - 1):
        raise ValueError(f"elements per thread must be a power of 2 (Triton tiles are), got {elements}")
    return Tiles(block=block, rows=block // 32, cols=32, num_warps=4)


def p_pad(stride: int) -> int:
    """Lanes of the backward's accumulator: a power of 2 holding every parameter."""
    return max(2, 1 << (stride - 1).bit_length())


def rows_layout(block_len: int, groups: int) -> bool:
    return groups > 1 and block_len < MIN_RUN


@dataclass(frozen=True)
class Grid:
    """The grid of one launch and the kernel's layout arguments."""

    grid: tuple[int, ...]
    rows_layout: bool
    tiles_per_run: int = 1
    tiles_per_group: int = 1
    period: int = 1
    n_rows: int = 1
    n_row_blocks: int = 1
    partial_shape: tuple[int, ...] = ()  # backward: the partial sums (summed on the host)


def forward_grid(n: int, block_len: int, groups: int, t: Tiles) -> Grid:
    if rows_layout(block_len, groups):
        period = groups * block_len
        n_rows = n // period
        return Grid((math.ceil(n_rows / t.rows) * math.ceil(period / t.cols),), True, period=period, n_rows=n_rows)
    tiles_per_run = math.ceil(block_len / t.block)
    return Grid(((n // block_len) * tiles_per_run,), False, tiles_per_run=tiles_per_run)


def backward_grid(n: int, block_len: int, groups: int, stride: int, t: Tiles, programs: int) -> Grid:
    """A persistent grid of about ``programs`` programs (never more than there are tiles)."""
    if rows_layout(block_len, groups):
        period = groups * block_len
        n_rows = n // period
        n_row_blocks = math.ceil(n_rows / t.rows)
        col_blocks = math.ceil(period / t.cols)
        row_programs = max(1, min(n_row_blocks, math.ceil(programs / col_blocks)))
        return Grid((col_blocks, row_programs), True, period=period, n_rows=n_rows, n_row_blocks=n_row_blocks,
                    partial_shape=(row_programs, period, stride))
    tiles_per_run = math.ceil(block_len / t.block)
    tiles_per_group = (n // block_len // groups) * tiles_per_run
    per_group = max(1, min(tiles_per_group, math.ceil(programs / groups)))
    return Grid((per_group, groups), False, tiles_per_run=tiles_per_run, tiles_per_group=tiles_per_group,
                partial_shape=(groups, per_group, stride))


def programs(device) -> int:
    """The persistent backward's program count on ``device`` (a few per multiprocessor)."""
    if getattr(device, "type", device) == "cuda":
        import torch

        return PROGRAMS_PER_SM * torch.cuda.get_device_properties(device).multi_processor_count
    return DEFAULT_PROGRAMS
