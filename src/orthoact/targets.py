"""Classical activations known by name: the one table behind ``orthoact.create("gelu")`` (the
module), :func:`orthoact.fit` and ``init="gelu"`` (the function) and :func:`orthoact.convert`'s
``targets="gelu"`` (the classes, class names and functions recognised as that activation, so a
model's ``nn.GELU``, ``F.gelu`` attribute or Hugging Face ``GELUActivation`` is found)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["Classical", "CLASSICAL", "ALIASES", "TARGETS", "lookup"]


@dataclass(frozen=True)
class Classical:
    """One classical activation: its function, its module and what stands for it in models."""

    name: str
    function: Callable[[Tensor], Tensor]
    module: Callable[[], nn.Module]
    matches: tuple = ()  # classes, class names (of optional libraries) and functions


#: Hugging Face transformers activation classes (matched by name, so transformers is optional).
HF_GELU_CLASSES = ("GELUActivation", "NewGELUActivation", "FastGELUActivation", "QuickGELUActivation", "GELUTanh",
                   "PytorchGELUTanh", "AccurateGELUActivation", "ClippedGELUActivation")

CLASSICAL: dict[str, Classical] = {c.name: c for c in (
    Classical("gelu", F.gelu, nn.GELU, (nn.GELU, *HF_GELU_CLASSES, F.gelu)),
    Classical("gelu_tanh", lambda x: F.gelu(x, approximate="tanh"), lambda: nn.GELU(approximate="tanh")),
    Classical("silu", F.silu, nn.SiLU, (nn.SiLU, "SiLUActivation", F.silu)),
    Classical("relu", F.relu, nn.ReLU, (nn.ReLU, F.relu, torch.relu)),
    Classical("tanh", torch.tanh, nn.Tanh, (nn.Tanh, torch.tanh, F.tanh)),
    Classical("sigmoid", torch.sigmoid, nn.Sigmoid, (nn.Sigmoid, torch.sigmoid, F.sigmoid)),
    Classical("mish", F.mish, nn.Mish, (nn.Mish, "MishActivation", F.mish)),
    Classical("leaky_relu", F.leaky_relu, nn.LeakyReLU, (nn.LeakyReLU, F.leaky_relu)),
    Classical("elu", F.elu, nn.ELU, (nn.ELU, F.elu)),
    Classical("softplus", F.softplus, nn.Softplus, (nn.Softplus, F.softplus)),
    Classical("identity", lambda x: x, nn.Identity),
)}
#: Other names of the same activations.
ALIASES = {"swish": "silu"}
#: name -> function (the fit targets).
TARGETS: dict[str, Callable[[Tensor], Tensor]] = {name: c.function for name, c in CLASSICAL.items()}


def lookup(name: str) -> Classical | None:
    """The classical activation of a name (case and ``-``/``_`` ignored, aliases resolved)."""
    key = name.strip().lower().replace("-", "_")
    return CLASSICAL.get(ALIASES.get(key, key))
