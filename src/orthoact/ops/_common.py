"""What the fast paths share: the kernel table, parameter packing, grouping, custom ops with autograd.

Every fast path is a pair of kernels behind two ``torch.library`` custom ops:
``forward(x, params, code, degree, sizes, block_len, groups) -> y`` and
``backward(dy, x, params, ..., need_input_grad, need_param_grad) -> (dx, dparams)``, where
``params`` packs the family's parameters (in the declaration's order, ``sizes`` columns each) into
one ``(groups, P)`` matrix and element ``i`` of the contiguous input uses row
``(i // block_len) % groups``. ``code`` is the kernel's :class:`~orthoact.family.FamilyCode`. The
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

from orthoact import family, reference
from orthoact.family import FamilySpec, KernelSpec


@dataclass(frozen=True)
class KernelEntry:
    spec: FamilySpec
    options: dict
    kernel: KernelSpec


def kernel_table() -> dict[int, KernelEntry]:
    """Every declared kernel by code (one per family and option combination)."""
    table: dict[int, KernelEntry] = {}
    for spec in family.specs():
        names = [o.name for o in spec.options]
        for combo in itertools.product(*(o.allowed for o in spec.options)):
            options = dict(zip(names, combo))
            kernel = spec.kernels(**options)
            code = int(kernel.code)
            if code in table and table[code].kernel != kernel:
                raise ValueError(f"kernel code {kernel.code!r} is declared twice ({table[code].spec.name}, {spec.name})")
            table.setdefault(code, KernelEntry(spec, options, kernel))
    return table


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


def define_ops(prefix: str, forward_impl: Callable, backward_impl: Callable, grad_dtype: torch.dtype, device_types=None):
    """Register ``orthoact::{prefix}_forward`` / ``_backward`` with fake kernels and autograd.

    ``grad_dtype`` is the dtype the backward returns the packed parameter gradient in.
    """

    @torch.library.custom_op(f"orthoact::{prefix}_forward", mutates_args=(), device_types=device_types)
    def forward_op(x: Tensor, params: Tensor, code: int, degree: int, sizes: list[int], block_len: int,
                   groups: int) -> Tensor:
        return forward_impl(x, params, code, degree, block_len, groups)

    @forward_op.register_fake
    def _(x, params, code, degree, sizes, block_len, groups):
        return torch.empty_like(x)

    @torch.library.custom_op(f"orthoact::{prefix}_backward", mutates_args=(), device_types=device_types)
    def backward_op(
        grad: Tensor, x: Tensor, params: Tensor, code: int, degree: int, sizes: list[int], block_len: int, groups: int,
        need_input_grad: bool, need_param_grad: bool,
    ) -> tuple[Tensor, Tensor]:
        return backward_impl(grad, x, params, code, degree, block_len, groups, need_input_grad, need_param_grad)

    @backward_op.register_fake
    def _(grad, x, params, code, degree, sizes, block_len, groups, need_input_grad, need_param_grad):
        dx = torch.empty_like(x) if need_input_grad else x.new_empty(0)
        shape = params.shape if need_param_grad else (0,)
        return dx, params.new_empty(shape, dtype=grad_dtype)

    def setup_context(ctx, inputs, output):
        x, params, code, degree, sizes, block_len_, groups = inputs
        ctx.save_for_backward(x, params)
        ctx.meta = (code, degree, list(sizes), block_len_, groups)

    def backward(ctx, grad):
        x, params = ctx.saved_tensors
        if torch.is_grad_enabled():  # a higher-order derivative was asked for
            return reference_backward(ctx, grad, x, params)
        need_x, need_p = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        dx, dparams = backward_op(grad.contiguous(), x, params, *ctx.meta, need_x, need_p)
        return (dx if need_x else None), (dparams.to(params.dtype) if need_p else None), None, None, None, None, None

    forward_op.register_autograd(backward, setup_context=setup_context)
    return forward_op, backward_op


def reference_backward(ctx, grad, x, params):
    """Differentiable backward: autograd through the reference formulas.

    The contiguous input's grouping, group (i // block_len) % groups, is the reference's grouping of
    ``x.reshape(-1, groups, block_len)`` along dimension 1.
    """
    code, _, sizes, block_len_, groups = ctx.meta
    entry = kernel_entry(code)
    y = reference.evaluate(entry.spec, x.reshape(-1, groups, block_len_), list(params.split(sizes, dim=1)),
                           channel_dim=1, **entry.options).reshape(x.shape)
    wanted = [t for t, need in zip((x, params), ctx.needs_input_grad[:2]) if need]
    grads = iter(torch.autograd.grad(y, wanted, grad, create_graph=True))
    return tuple(next(grads) if need else None for need in ctx.needs_input_grad[:2]) + (None,) * 5


def run(op, spec: FamilySpec, x: Tensor, params: list[Tensor], degree, channel_dim: int, options: dict,
        param_dtype: torch.dtype, input_dtypes: tuple[torch.dtype, ...]) -> Tensor:
    """Pack the parameters (in ``param_dtype``), make ``x`` contiguous in a dtype the kernels read
    (converted to ``param_dtype`` otherwise) and call ``op``; the result has ``x``'s dtype."""
    packed = torch.cat([p.to(param_dtype) for p in params], dim=1).contiguous()  # autograd splits the grads back
    groups = packed.shape[0]
    xc = (x if x.dtype in input_dtypes else x.to(param_dtype)).contiguous()
    kernel = spec.kernels(**options)
    y = op(xc, packed, int(kernel.code), spec.kernel_degree(degree), [p.shape[1] for p in params],
           block_len(x, groups, channel_dim), groups)
    return y.to(x.dtype)
