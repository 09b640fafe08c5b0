"""Fine-tuning a converted model as the paper's notebook does: every pretrained weight frozen, only
the new activations (and optionally a new task head) trained.

    >>> import torch, orthoact
    >>> from torch import nn
    >>> backbone = nn.Sequential(nn.Linear(8, 16), nn.GELU(), nn.Linear(16, 16), nn.GELU())
    >>> model, _ = orthoact.convert(backbone, "hermite", 3, clamp=True, domain=None)
    >>> model.append(nn.Linear(16, 10))  # a new head for the task
    Sequential(...)
    >>> params = orthoact.finetune_parameters(model, head=model[-1])
    >>> optimizer = torch.optim.AdamW(params, lr=1e-3)
    >>> sum(p.numel() for p in params), sum(p.requires_grad for p in model.parameters())
    (180, 6)
"""

from __future__ import annotations

from collections.abc import Iterable

from torch import nn

from orthoact.activation import BasisActivation

__all__ = ["activation_parameters", "finetune_parameters"]


def activation_parameters(model: nn.Module) -> list[nn.Parameter]:
    """The parameters of every orthoact activation in ``model`` (each once)."""
    seen: dict[int, nn.Parameter] = {}
    for module in model.modules():
        if isinstance(module, BasisActivation):
            for p in module.parameters():
                seen.setdefault(id(p), p)
    return list(seen.values())


def _head_modules(model: nn.Module, head) -> list[nn.Module]:
    if head is None:
        return []
    heads = [head] if isinstance(head, (str, nn.Module)) else list(head)
    out = []
    for h in heads:
        if isinstance(h, str):
            try:
                h = model.get_submodule(h)
            except AttributeError:
                names = [name for name, _ in model.named_children()]
                raise ValueError(f"head {h!r} is not a submodule of {type(model).__name__} (its children: {names})") from None
        if not isinstance(h, nn.Module):
            raise TypeError(f"head must be a module, a submodule name or a list of them, got {type(h).__name__}")
        out.append(h)
    return out


def finetune_parameters(model: nn.Module, head: nn.Module | str | Iterable | None = None) -> list[nn.Parameter]:
    """Freeze every parameter of ``model`` except its orthoact activations' and ``head``'s, and return
    those (for the optimizer).

    Args:
        model: a converted model (:func:`orthoact.convert`), with a new head attached if the task needs one.
        head: modules trained in full besides the activations: a module, the name of a submodule
            (``"classifier"``) or a list of them. Default: ``None`` (the activations only)

    Returns:
        The trainable parameters, activations first. Every other parameter has ``requires_grad=False``.

    Raises:
        ValueError: the model has no orthoact activation (convert it first) or ``head`` names no submodule.
    """
    params = activation_parameters(model)
    if not params:
        raise ValueError(f"{type(model).__name__} has no orthoact activation; convert it first (orthoact.convert)")
    ids = {id(p) for p in params}
    for h in _head_modules(model, head):
        for p in h.parameters():
            if id(p) not in ids:
                ids.add(id(p))
                params.append(p)
    for p in model.parameters():
        p.requires_grad_(id(p) in ids)
    return params
