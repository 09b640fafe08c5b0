"""What the fast paths share: the kernel table, parameter packing, grouping, custom ops with autograd.

Every fast path is a pair of kernels behind two ``torch.library`` custom ops:
``forward(x, params, code, degree, sizes, block_len, groups, flags, bounds, fixed) -> y`` and
``backward(dy, x, params, ..., need_input_grad, need_param_grad) -> (dx, dparams)``, where
``params`` packs the family's parameters (in the declaration's order, ``sizes`` columns each; a clamp
limit last) into one ``(groups, P)`` matrix, ``flags`` and ``bounds`` are the input map
(:class:`orthoact.inputs.InputMap`: bit 0 clamp, bit 1 domain ``[lo, hi]``), ``fixed`` marks the
parameter tensors that need no gradient (bit ``j``: the ``j``-th; their columns of ``dparams`` may be
left unset, e.g. Fourier's fixed frequencies) and element ``i`` of the contiguous input uses row
``(i // block_len) % groups``. ``code`` numbers the kernel in :func:`kernel_table`. The
autograd formula saves only ``x`` and the parameters; a higher-order derivative (``create_graph=True``)
differentiates the reference formulas instead.

Eager calls on plain tensors do not go through the custom ops (their dispatch costs more than a
small activation): :func:`define_ops`'s forward runs the same implementations behind a plain
``autograd.Function``, and only what traces (torch.compile, export, fake tensors, dispatch modes,
functorch) sees the ops. :func:`run_recompute` (the value and the first derivatives from one
backward call, for :mod:`orthoact.nn`'s MLP) calls a backward implementation directly too; its
caller sends traced calls through the ops instead (``fused_recompute``, ``triton_recompute``).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

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
                   groups: int, flags: int, bounds: list[float], fixed: int) -> Tensor:
        return forward_impl(x, params, code, degree, block_len, groups, InputMap.from_flags(flags, bounds))

    @forward_op.register_fake
    def _(x, params, code, degree, sizes, block_len, groups, flags, bounds, fixed):
        return torch.empty_like(x)

    @torch.library.custom_op(f"orthoact::{prefix}_backward", mutates_args=())
    def backward_op(
        grad: Tensor, x: Tensor, params: Tensor, code: int, degree: int, sizes: list[int], block_len: int, groups: int,
        flags: int, bounds: list[float], fixed: int, need_input_grad: bool, need_param_grad: bool,
    ) -> tuple[Tensor, Tensor]:
        return backward_impl(grad, x, params, code, degree, block_len, groups, InputMap.from_flags(flags, bounds),
                             need_input_grad, need_param_grad, fixed)

    @backward_op.register_fake
    def _(grad, x, params, code, degree, sizes, block_len, groups, flags, bounds, fixed, need_input_grad,
          need_param_grad):
        dx = torch.empty_like(x) if need_input_grad else x.new_empty(0)
        shape = params.shape if need_param_grad else (0,)
        return dx, params.new_empty(shape, dtype=grad_dtype)

    def setup_context(ctx, inputs, output):
        x, params, *meta = inputs
        ctx.save_for_backward(x, params)
        ctx.meta = tuple(list(m) if isinstance(m, (list, tuple)) else m for m in meta)

    def backward(ctx, grad):
        x, params = ctx.saved_tensors
        if torch.is_grad_enabled():  # a higher-order derivative was asked for
            return reference_backward(ctx, grad, x, params)
        need_x, need_p = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        dx, dparams = backward_op(grad.contiguous(), x, params, *ctx.meta, need_x, need_p)
        return (dx if need_x else None), (dparams.to(params.dtype) if need_p else None), *([None] * len(ctx.meta))

    forward_op.register_autograd(backward, setup_context=setup_context)

    # Eager calls skip the custom-op machinery (argument normalisation, redispatch, the autograd
    # wrapper, the packing's own autograd node: about 0.3 ms per forward+backward, several percent of
    # a 4M-element call and more of a small one): the same implementations behind a plain
    # autograd.Function that takes the parameter tensors as they are, or no autograd node at all when
    # nothing needs a gradient. torch.compile, export, fake tensors, dispatch modes and functorch
    # transforms see the custom ops.
    def eager_forward(ctx, x, call, *params):
        packed = call.pack(params)
        ctx.save_for_backward(x, *params)
        ctx.call, ctx.packed = call, packed
        return forward_impl(x, packed, call.code, call.degree, call.block_len, call.groups, call.inputs)

    def eager_backward(ctx, grad):
        x, *params = ctx.saved_tensors
        call = ctx.call
        need_x, need_p = ctx.needs_input_grad[0], any(ctx.needs_input_grad[2:])
        if torch.is_grad_enabled():  # a higher-order derivative: through the reference, from the leaves
            dx, dpacked = reference_grads(call, grad, x, call.pack(params), need_x, need_p)
        elif plain_eager(grad):
            fixed = sum(1 << j for j, need in enumerate(ctx.needs_input_grad[2:]) if not need)
            dx, dpacked = backward_impl(grad.contiguous(), x, ctx.packed, call.code, call.degree, call.block_len,
                                        call.groups, call.inputs, need_x, need_p, fixed)
        else:  # traced (compiled autograd): the custom op
            dx, dpacked = backward_op(grad.contiguous(), x, ctx.packed, *call.op_args(), need_x, need_p)
        dparams = dpacked.split(list(call.sizes), dim=1) if need_p else [None] * len(params)
        return (dx if need_x else None), None, *(
            (d if d.dtype == p.dtype else d.to(p.dtype)) if d is not None and need else None
            for d, p, need in zip(dparams, params, ctx.needs_input_grad[2:]))

    # named after the custom op: its grad_fn is {prefix}_forwardBackward
    EagerFunction = type(f"{prefix}_forward", (torch.autograd.Function,),
                         {"forward": staticmethod(eager_forward), "backward": staticmethod(eager_backward)})

    def forward(x: Tensor, params: list[Tensor], call: KernelCall) -> Tensor:
        """``y`` for ``x`` and the parameter matrices ``params`` (packed by ``call``), with autograd."""
        if not plain_eager(x, *params):
            return forward_op(x, call.pack(params), *call.op_args())
        if torch.is_grad_enabled() and (x.requires_grad or any(p.requires_grad for p in params)):
            return EagerFunction.apply(x, call, *params)
        return forward_impl(x, call.pack(params), call.code, call.degree, call.block_len, call.groups, call.inputs)

    return forward, backward_op


class KernelCall(NamedTuple):
    """What a fast path's kernels need besides the tensors: the kernel, the degree, the packing of
    the parameters (``sizes`` columns each, in ``dtype``), the grouping and the input map."""

    code: int
    degree: int
    sizes: tuple[int, ...]
    block_len: int
    groups: int
    inputs: InputMap
    dtype: torch.dtype
    fixed: int = 0  # bit j: the j-th parameter tensor needs no gradient (the backward may skip its sums)

    def pack(self, params) -> Tensor:
        """The ``(groups, P)`` matrix the kernels read (differentiable: autograd splits the grads back)."""
        params = [p if p.dtype == self.dtype else p.to(self.dtype) for p in params]
        return params[0].contiguous() if len(params) == 1 else torch.cat(params, dim=1)

    def op_args(self) -> tuple:
        """The custom ops' arguments after the tensors."""
        return (self.code, self.degree, list(self.sizes), self.block_len, self.groups, self.inputs.flags,
                self.inputs.bounds, self.fixed)


_PLAIN = (Tensor, torch.nn.Parameter)


def plain_eager(*tensors: Tensor) -> bool:
    """Whether this call runs eagerly on plain tensors: not traced by torch.compile or export, no
    tensor subclass (but parameters), dispatch or function mode, no functorch transform (those see
    the custom ops)."""
    return (
        not torch.compiler.is_compiling()
        and all(type(t) in _PLAIN for t in tensors)
        and torch._C._len_torch_dispatch_stack() == 0
        and not torch._C._is_torch_function_mode_enabled()
        and torch._C._functorch.peek_interpreter_stack() is None
    )


def reference_backward(ctx, grad, x, params):
    """Differentiable backward of the custom op: autograd through the reference formulas."""
    code, degree, sizes, block_len_, groups, flags, bounds, fixed = ctx.meta
    call = KernelCall(code, degree, tuple(sizes), block_len_, groups, InputMap.from_flags(flags, bounds), params.dtype,
                      fixed)
    need_x, need_p = ctx.needs_input_grad[:2]
    dx, dparams = reference_grads(call, grad, x, params, need_x, need_p)
    return (dx if need_x else None), (dparams if need_p else None), *([None] * len(ctx.meta))


def reference_grads(call: KernelCall, grad: Tensor, x: Tensor, packed: Tensor, need_x: bool, need_p: bool):
    """``(dx, dpacked)`` by autograd through the reference formulas, differentiable (a higher-order
    derivative); an unneeded one is ``None``.

    The contiguous input's grouping, group (i // block_len) % groups, is the reference's grouping of
    ``x.reshape(-1, groups, block_len)`` along dimension 1.
    """
    entry = kernel_entry(call.code)
    y = reference.evaluate(entry.spec, x.reshape(-1, call.groups, call.block_len),
                           list(packed.split(list(call.sizes), dim=1)), channel_dim=1, inputs=call.inputs,
                           **entry.options).reshape(x.shape)
    wanted = [t for t, need in zip((x, packed), (need_x, need_p)) if need]
    grads = iter(torch.autograd.grad(y, wanted, grad, create_graph=True))
    return tuple(next(grads) if need else None for need in (need_x, need_p))


def kernel_call(spec: FamilySpec, x: Tensor, params: list[Tensor], degree, channel_dim: int, options: dict,
                inputs: InputMap, param_dtype: torch.dtype, input_dtypes: tuple[torch.dtype, ...]) -> tuple[Tensor, KernelCall]:
    """``x`` contiguous in a dtype the kernels read (converted to ``param_dtype`` otherwise) and the
    call's :class:`KernelCall` (the parameters packed in ``param_dtype``; a clamp limit is the last)."""
    groups = params[0].shape[0]
    xc = (x if x.dtype in input_dtypes else x.to(param_dtype)).contiguous()
    call = KernelCall(kernel_code(spec, options), spec.kernel_degree(degree), tuple(p.shape[1] for p in params),
                      block_len(x, groups, channel_dim), groups, inputs, param_dtype,
                      sum(1 << j for j, p in enumerate(params) if not p.requires_grad))
    return xc, call


def run(op, spec: FamilySpec, x: Tensor, params: list[Tensor], degree, channel_dim: int, options: dict,
        inputs: InputMap, param_dtype: torch.dtype, input_dtypes: tuple[torch.dtype, ...]) -> Tensor:
    """Call ``op`` (a forward of :func:`define_ops`) on :func:`kernel_call`'s input; the result has
    ``x``'s dtype."""
    xc, call = kernel_call(spec, x, params, degree, channel_dim, options, inputs, param_dtype, input_dtypes)
    y = op(xc, params, call)
    return y if y.dtype == x.dtype else y.to(x.dtype)


def run_recompute(backward_impl: Callable, spec: FamilySpec, x: Tensor, params: list[Tensor], grad: Tensor, degree,
                  channel_dim: int, options: dict, inputs: InputMap, param_dtype: torch.dtype,
                  input_dtypes: tuple[torch.dtype, ...], need_input_grad: bool, need_params: list[bool]) -> tuple:
    """``(y, dx, dparams)`` from one call of ``backward_impl`` with ``want_value`` (a backward that writes
    ``y = F(x)`` too): ``dx`` and each of ``dparams`` the gradient for ``grad = dL/dy``, ``None`` where
    not needed; first derivatives, no graph. (See :mod:`orthoact.backends`.)"""
    xc, call = kernel_call(spec, x, params, degree, channel_dim, options, inputs, param_dtype, input_dtypes)
    need_p = any(need_params)
    fixed = sum(1 << j for j, need in enumerate(need_params) if not need)
    with torch.no_grad():
        packed = call.pack(params)
        dx, dpacked, y = backward_impl(grad.contiguous(), xc, packed, call.code, call.degree, call.block_len,
                                       call.groups, call.inputs, need_input_grad, need_p, fixed, True)
    dparams = dpacked.split(list(call.sizes), dim=1) if need_p else [None] * len(params)
    dparams = [d.to(p.dtype) if need else None for d, p, need in zip(dparams, params, need_params)]
    return (y if y.dtype == x.dtype else y.to(x.dtype),
            (dx if dx.dtype == x.dtype else dx.to(x.dtype)) if need_input_grad else None, dparams)
