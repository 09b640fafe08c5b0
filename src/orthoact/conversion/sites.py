"""Where a model's activations are: finding them by kind, replacing them, and the device and dtype a
replacement takes."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from torch import nn

from orthoact.activation import BasisActivation
from orthoact.targets import CLASSICAL, lookup

__all__ = ["Site", "expand_targets", "describe_targets", "find_sites", "set_site", "site_exists", "surrounding_placement"]


@dataclass(frozen=True)
class Site:
    """One activation of a model: ``getattr(parent, attr)``, named ``name`` from the model's root."""

    parent: nn.Module
    attr: str
    name: str

    def get(self):
        return getattr(self.parent, self.attr)

    def set(self, value) -> None:
        set_site(self.parent, self.attr, value)


def expand_targets(targets) -> tuple:
    """Classes, class names and functions to match; activation names (``"silu"``, ``"swish"``) expand
    to what stands for them (see :data:`orthoact.targets.CLASSICAL`)."""
    if isinstance(targets, (type, str)) or callable(targets):
        targets = (targets,)
    out = []
    for t in targets:
        classical = lookup(t) if isinstance(t, str) else None
        out.extend(classical.matches if classical is not None and classical.matches else (t,))
    return tuple(out)


def target_names() -> list[str]:
    """The activation names ``targets=`` accepts."""
    return [name for name, c in CLASSICAL.items() if c.matches]


def describe_targets(targets) -> str:
    return ", ".join(t if isinstance(t, str) else getattr(t, "__name__", repr(t)) for t in targets)


def _matches(value, targets) -> bool:
    for t in targets:
        if isinstance(t, str):
            if isinstance(value, nn.Module) and type(value).__name__ == t:
                return True
        elif isinstance(t, type):
            if isinstance(value, t):
                return True
        elif value is t:
            return True
    return False


def find_sites(model: nn.Module, targets) -> list[Site]:
    """Every activation of ``model`` matching ``targets`` (already expanded), as submodules or as
    function attributes (``intermediate_act_fn = F.gelu``). A matched module is not searched inside
    (HF's ``GELUActivation`` holds ``F.gelu`` itself), nor is an orthoact activation."""
    found = []

    def visit(parent: nn.Module, prefix: str) -> None:
        if isinstance(parent, BasisActivation):
            return
        for attr, value in list(vars(parent).items()):
            if not attr.startswith("_") and callable(value) and not isinstance(value, (nn.Module, type)) and _matches(value, targets):
                found.append(Site(parent, attr, f"{prefix}{attr}"))
        for attr, child in parent._modules.items():
            if child is None:
                continue
            if _matches(child, targets):
                found.append(Site(parent, attr, f"{prefix}{attr}"))
            else:
                visit(child, f"{prefix}{attr}.")

    visit(model, "")
    return found


def set_site(parent: nn.Module, attr: str, value) -> None:
    """``setattr`` that also turns a submodule slot back into a plain (function) attribute."""
    if not isinstance(value, nn.Module) and attr in parent._modules:
        del parent._modules[attr]
    setattr(parent, attr, value)


def site_of(model: nn.Module, name: str) -> Site | None:
    """The site ``name`` (``"encoder.layer.0.intermediate.intermediate_act_fn"``) if ``model`` has a
    callable there."""
    parent_name, _, attr = name.rpartition(".")
    try:
        parent = model.get_submodule(parent_name) if parent_name else model
    except AttributeError:
        return None
    return Site(parent, attr, name) if callable(getattr(parent, attr, None)) else None


def site_exists(model: nn.Module, name: str) -> bool:
    return site_of(model, name) is not None


def surrounding_placement(model: nn.Module, parent: nn.Module) -> dict:
    """Device and dtype of the tensors around a site (its parent's, else the model's), else none."""
    for owner in (parent, model):
        for t in itertools.chain(owner.parameters(), owner.buffers()):
            if t.is_floating_point():
                return {"device": t.device, "dtype": t.dtype}
    return {}
