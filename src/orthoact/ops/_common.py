"""What the fast paths share: the kernel table, parameter packing, grouping, custom ops with autograd.

Every fast path is a pair of kernels behind two ``torch.library`` custom ops:
``forward(x, params, code, degree, sizes, block_len, groups, flags, bounds) -> y`` and
``backward(dy, x, params, ..., need_input_grad, need_param_grad) -> (dx, dparams)``, where
``params`` packs the family's parameters (in the declaration's order, ``sizes`` columns each; a clamp
limit last) into one ``(groups, P)`` matrix, ``flags`` and ``bounds`` are the input map
(:class:`orthoact.inputs.InputMap`: bit 0 clamp, bit 1 domain ``[lo, hi]``) and element ``i`` of the contiguous input uses row
``(i // block_len) % groups``. ``code`` numbers the kernel in :func:`kernel_table`. The
autograd formula saves only ``x`` and ``params``; a higher-order derivative (``create_graph=True``)
differentiates the reference formulas instead.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from orthoact import declarations, reference
from orthoact.declarations import FamilySpec, KernelSpec
from orthoact.inputs import InputMap


@dataclass(frozen=True)
class KernelEntry:
    """One kernel: a family variant (a combination of its options) and where its code is."""

    code: int  # its number in kernel_table(), passed through the custom ops
    spec: FamilySpec
    options: dict
    kernel: KernelSpec
    variant: int  # its number among the family's own variants (the code inside the family's C++ library)


_table: tuple[tuple, dict[int, KernelEntry], dict[tuple, int]] | None = None


def _tables() -> tuple[dict[int, KernelEntry], dict[tuple, int]]:
    global _table
    specs = declarations.specs()
    key = tuple(map(id, specs))
    if _table is None or _table[0] != key:
        table: dict[int, KernelEntry] = {}
        codes: dict[tuple, int] = {}
        for spec in specs:
            if spec.kernels is None:
                continue
            names = [o.name for o in spec.options]
            for variant, combo in enumerate(itertools.product(*(o.allowed for o in spec.options))):
                options = dict(zip(names, combo))
                code = len(table)
                table[code] = KernelEntry(code, spec, options, spec.kernels(**options), variant)
                codes[(spec.name, tuple(sorted(options.items())))] = code
        _table = (key, table, codes)
    return _table[1], _table[2]


def kernel_table() -> dict[int, KernelEntry]:
    """Every declared kernel by code: one per family with kernels and combination of its options,
    numbered in declaration order (so no number is ever written by hand)."""
    return _tables()[0]


def kernel_code(spec: FamilySpec, options: dict) -> int | None:
    """The code of a family variant's kernels (``None``: the family declares none)."""
    return _tables()[1].get((spec.name, tuple(sorted(options.items()))))


#: The highest degree the fast paths compile (the C++ build gets it as OA_MAX_DEGREE); higher ones
#: use the reference (``auto``) or raise (an explicit backend).
MAX_KERNEL_DEGREE = 64


def kernel_entry(code: int) -> KernelEntry:
    """The family, options and kernel of a code."""
    return kernel_table()[code]


def block_len(x: Tensor, groups: int, channel_dim: int) -> int:
    if groups == 1:
        return max(x.numel(), 1)
    dim = channel_dim % x.dim()
    return (x.shape[dim] // groups) * math.prod(x.shape[dim + 1 :])


def define_ops(prefix: str, forward_impl: Callable, backward_impl: Callable, grad_dtype: torch.dtype):
    """Register ``orthoact::{prefix}_forward`` / ``_backward`` with fake kernels and autograd.

    ``grad_dtype`` is the dtype the backward returns the packed parameter gradient in.
    """

    @torch.library.custom_op(f"orthoact::{prefix}_forward", mutates_args=())
    def forward_op(x: Tensor, params: Tensor, code: int, degree: int, sizes: list[int], block_len: int,
                   groups: int, flags: int, bounds: list[float]) -> Tensor:
        return forward_impl(x, params, code, degree, block_len, groups, InputMap.from_flags(flags, bounds))

    @forward_op.register_fake
    def _(x, params, code, degree, sizes, block_len, groups, flags, bounds):
        return torch.empty_like(x)

    @torch.library.custom_op(f"orthoact::{prefix}_backward", mutates_args=())
    def backward_op(
        grad: Tensor, x: Tensor, params: Tensor, code: int, degree: int, sizes: list[int], block_len: int, groups: int,
        flags: int, bounds: list[float], need_input_grad: bool, need_param_grad: bool,
    ) -> tuple[Tensor, Tensor]:
        return backward_impl(grad, x, params, code, degree, block_len, groups, InputMap.from_flags(flags, bounds),
                             need_input_grad, need_param_grad)

    @backward_op.register_fake
    def _(grad, x, params, code, degree, sizes, block_len, groups, flags, bounds, need_input_grad, need_param_grad):
        dx = torch.empty_like(x) if need_input_grad else x.new_empty(0)
        shape = params.shape if need_param_grad else (0,)
        return dx, params.new_empty(shape, dtype=grad_dtype)

    def setup_context(ctx, inputs, output):
        x, params, code, degree, sizes, block_len_, groups, flags, bounds = inputs
        ctx.save_for_backward(x, params)
        ctx.meta = (code, degree, list(sizes), block_len_, groups, flags, list(bounds))

    def backward(ctx, grad):
        x, params = ctx.saved_tensors
        if torch.is_grad_enabled():  # a higher-order derivative was asked for
            return reference_backward(ctx, grad, x, params)
        need_x, need_p = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        dx, dparams = backward_op(grad.contiguous(), x, params, *ctx.meta, need_x, need_p)
        return (dx if need_x else None), (dparams.to(params.dtype) if need_p else None), *([None] * 7)

    forward_op.register_autograd(backward, setup_context=setup_context)
    return forward_op, backward_op


def reference_backward(ctx, grad, x, params):
    """Differentiable backward: autograd through the reference formulas.

    The contiguous input's grouping, group (i // block_len) % groups, is the reference's grouping of
    ``x.reshape(-1, groups, block_len)`` along dimension 1.
    """
    code, _, sizes, block_len_, groups, flags, bounds = ctx.meta
    entry = kernel_entry(code)
    y = reference.evaluate(entry.spec, x.reshape(-1, groups, block_len_), list(params.split(sizes, dim=1)),
                           channel_dim=1, inputs=InputMap.from_flags(flags, bounds), **entry.options).reshape(x.shape)
    wanted = [t for t, need in zip((x, params), ctx.needs_input_grad[:2]) if need]
    grads = iter(torch.autograd.grad(y, wanted, grad, create_graph=True))
    return tuple(next(grads) if need else None for need in ctx.needs_input_grad[:2]) + (None,) * 7


def run(op, spec: FamilySpec, x: Tensor, params: list[Tensor], degree, channel_dim: int, options: dict,
        inputs: InputMap, param_dtype: torch.dtype, input_dtypes: tuple[torch.dtype, ...]) -> Tensor:
    """Pack the parameters (in ``param_dtype``; a clamp limit is the last column), make ``x``
    contiguous in a dtype the kernels read (converted to ``param_dtype`` otherwise) and call ``op``;
    the result has ``x``'s dtype."""
    packed = torch.cat([p.to(param_dtype) for p in params], dim=1).contiguous()  # autograd splits the grads back
    groups = packed.shape[0]
    xc = (x if x.dtype in input_dtypes else x.to(param_dtype)).contiguous()
    y = op(xc, packed, kernel_code(spec, options), spec.kernel_degree(degree), [p.shape[1] for p in params],
           block_len(x, groups, channel_dim), groups, inputs.flags, inputs.bounds)
    return y.to(x.dtype)
