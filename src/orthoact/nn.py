r"""Building blocks around the activations: an MLP that needs less memory than GELU's.

In ``Linear -> activation -> Linear``, autograd normally keeps three tensors for backward: the block
input ``x`` (for the first weight's gradient), the pre-activation ``h`` (for the activation) and the
activation's output ``a = F(h)`` (for the second weight's gradient). ``a`` is as large as ``h`` and
costs almost nothing to recompute, so :func:`mlp` keeps only ``x`` and ``h`` and recomputes ``a`` in
backward: with a hidden width of 4d the block's saved activations drop from 9d to 5d per token.

The second Linear is a small autograd function whose backward recomputes ``a = F(h)`` for the
weight gradient. For an orthoact activation (eagerly) it is :class:`LinearOfRecomputed`, which owns
the activation's backward too: one call of the activation's ``forward_and_backward`` gives ``a``,
``dL/dh`` and the activation's parameter gradients (one kernel call with the fused CPU or the Triton
kernels; on CPU one pass where each group's run is long and there is no input map, whose basis,
sines and cosines or maxima serve both). Otherwise (any
elementwise activation module whose backward keeps its input: GELU, SiLU, ...; or under
``torch.compile``) it is :class:`LinearOfActivation`, which recomputes ``F(h)`` and hands ``dL/da``
to the activation's own backward. Both work with every orthoact family on every backend (fused CPU,
Triton), with ``groups > 1``, autocast and DDP; ``torch.compile(fullgraph=True)`` traces the
second; a double backward raises (use ``recompute=False`` for that). When a module hook is
registered on the activation or the second Linear, or on every module, the block runs as the plain
one (no recompute): each hook is then called once per step on the values it changes.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from orthoact.registry import resolve

__all__ = ["MLP", "mlp", "LinearOfActivation", "LinearOfRecomputed"]


_DOUBLE_BACKWARD = ("an MLP with recompute=True computes first derivatives only (its backward recomputes the "
                    "activation without a graph); build it with recompute=False for double backward")


def _weight_grads(ctx, dy: Tensor, a: Tensor, need_w: bool, need_b: bool, weight: Tensor):
    """The second Linear's weight and bias gradients from ``dy`` and the recomputed ``a``."""
    dy2 = dy.reshape(-1, dy.shape[-1])
    dw = (dy2.t() @ a.reshape(-1, a.shape[-1]).to(dy.dtype)).to(weight.dtype) if need_w else None
    db = dy2.sum(0).to(ctx.bias_dtype) if need_b and ctx.has_bias else None
    return dw, db


def _input_grad(dy: Tensor, weight: Tensor, h: Tensor) -> Tensor:
    w = weight if weight.dtype == dy.dtype else weight.to(dy.dtype)  # as autocast ran the forward
    return (dy @ w).to(h.dtype)


class LinearOfActivation(torch.autograd.Function):
    """``y = F.linear(a, weight, bias)`` for ``a = act(h)``, saving ``h`` instead of ``a``.

    ``a`` must be ``act(h)`` computed just before (it carries the activation's autograd graph, which
    keeps ``h``); backward recomputes ``act(h)`` for the weight gradient and returns ``dL/da``.
    """

    @staticmethod
    def forward(ctx, a: Tensor, h: Tensor, weight: Tensor, bias: Tensor | None, act) -> Tensor:
        ctx.save_for_backward(h, weight)
        ctx.act = act
        ctx.has_bias = bias is not None
        ctx.bias_dtype = bias.dtype if bias is not None else None
        return F.linear(a, weight, bias)

    @staticmethod
    def backward(ctx, dy: Tensor):
        if torch.is_grad_enabled():
            raise RuntimeError(_DOUBLE_BACKWARD)
        h, weight = ctx.saved_tensors
        need_a, _, need_w, need_b, _ = ctx.needs_input_grad
        da = _input_grad(dy, weight, h) if need_a else None
        a = ctx.act(h) if need_w else None  # the activation again, from the saved input (no graph: grad mode is off)
        return da, None, *_weight_grads(ctx, dy, a, need_w, need_b, weight), None


class LinearOfRecomputed(torch.autograd.Function):
    """``y = F.linear(act(h), weight, bias)`` for an activation with ``forward_and_backward`` (an
    orthoact activation), saving ``h``: backward gets ``act(h)``, ``dL/dh`` and the activation's
    parameter gradients from one ``forward_and_backward`` call. ``act_tensors`` are
    ``act.reference_tensors()``, whose gradients it returns."""

    @staticmethod
    def forward(ctx, h: Tensor, weight: Tensor, bias: Tensor | None, act, *act_tensors: Tensor) -> Tensor:
        ctx.save_for_backward(h, weight, *act_tensors)  # (the small parameters: an in-place change raises)
        ctx.act = act
        ctx.has_bias = bias is not None
        ctx.bias_dtype = bias.dtype if bias is not None else None
        return F.linear(act(h), weight, bias)  # (grad mode is off: act keeps no graph)

    @staticmethod
    def backward(ctx, dy: Tensor):
        if torch.is_grad_enabled():
            raise RuntimeError(_DOUBLE_BACKWARD)
        h, weight, *_ = ctx.saved_tensors
        need_h, need_w, need_b, _, *need_act = ctx.needs_input_grad
        if need_h or any(need_act):
            a, dh, dact = ctx.act.forward_and_backward(h, _input_grad(dy, weight, h), need_input_grad=need_h)
        else:
            a, dh, dact = ctx.act(h) if need_w else None, None, [None] * len(need_act)
        dact = [d if need else None for d, need in zip(dact, need_act)]
        return dh, *_weight_grads(ctx, dy, a, need_w, need_b, weight), None, *dact


_HOOKS = ("_backward_hooks", "_backward_pre_hooks", "_forward_hooks", "_forward_pre_hooks")


def _hooked(*blocks) -> bool:
    """Whether a hook is registered on one of these modules, or on every module
    (``torch.nn.modules.module.register_module_*_hook``). The recompute calls the activation a
    second time in backward with gradients off (where a forward hook's change to the input or the
    output, or its tensor hook, would act differently, and a hook with state would count twice),
    LinearOfRecomputed owns the activation's backward (which a backward hook would not see), and
    neither calls the second Linear as a module (whose hooks would not run)."""
    from torch.nn.modules import module as modules

    return any(getattr(modules, "_global" + name, None) or any(getattr(b, name, None) for b in blocks)
               for name in _HOOKS)


def mlp(x: Tensor, fc1: nn.Linear, act, fc2: nn.Linear, recompute: bool = True) -> Tensor:
    """``fc2(act(fc1(x)))``; with ``recompute`` (and gradients on) the activation's output is not
    kept for backward."""
    h = fc1(x)
    if not recompute or not torch.is_grad_enabled() or _hooked(act, fc2):
        return fc2(act(h))
    if hasattr(act, "forward_and_backward") and not torch.compiler.is_compiling():
        return LinearOfRecomputed.apply(h, fc2.weight, fc2.bias, act, *act.reference_tensors())
    return LinearOfActivation.apply(act(h), h, fc2.weight, fc2.bias, act)


class MLP(nn.Module):
    r"""``Linear -> activation -> Linear -> Dropout`` that keeps only the input and the
    pre-activation for backward (``recompute=True``), recomputing the activation.

    .. math:: y = \mathrm{Dropout}(W_2\, F(W_1 x + b_1) + b_2)

    Args:
        in_features: size of each input sample.
        hidden_features: width of the hidden layer.
        out_features: size of each output sample. Default: ``None`` (``in_features``)
        act: the activation, a name (``"hermite:3"``, ``"rational:5/4"``, ``"gelu"``...), a class or a
            zero-argument factory. Default: ``"hermite:3"``
        bias: learn the additive biases. Default: ``True``
        dropout: dropout probability after the second Linear. Default: ``0.0``
        recompute: keep only ``x`` and ``h`` for backward and recompute the activation (44% less
            activation memory at hidden = 4 x in); ``False`` gives the plain block. Default: ``True``
        device: device of the parameters. Default: ``None``
        dtype: floating dtype of the parameters. Default: ``None``

    Shape:
        - Input: :math:`(*, H_{in})`.
        - Output: :math:`(*, H_{out})`.

    The ``state_dict`` keys (``fc1``, ``act``, ``fc2``) are the same with or without recompute.

    Examples::

        >>> block = MLP(768, 3072, act="hermite:3")
        >>> block(torch.randn(8, 256, 768)).shape
        torch.Size([8, 256, 768])
    """

    def __init__(self, in_features: int, hidden_features: int, out_features: int | None = None, act="hermite:3",
                 bias: bool = True, dropout: float = 0.0, recompute: bool = True, device=None, dtype=None) -> None:
        super().__init__()
        factory = {"device": device, "dtype": dtype}
        out_features = out_features or in_features
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
        if not isinstance(recompute, bool):
            raise TypeError(f"recompute must be a bool, got {recompute!r}")
        self.fc1 = nn.Linear(in_features, hidden_features, bias=bias, **factory)
        self.act = resolve(act)()
        if any(t.is_floating_point() for t in self.act.parameters()):
            self.act.to(**{k: v for k, v in factory.items() if v is not None})
        self.fc2 = nn.Linear(hidden_features, out_features, bias=bias, **factory)
        self.drop = nn.Dropout(dropout)
        self.recompute = recompute

    def forward(self, x: Tensor) -> Tensor:
        return self.drop(mlp(x, self.fc1, self.act, self.fc2, self.recompute))

    def extra_repr(self) -> str:
        return f"recompute={self.recompute}"
