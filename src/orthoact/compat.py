"""Loading parameters from the peer libraries: torchortho 0.1.2 (the paper's own library) and PAU's
rational-activations 0.2.0.

torchortho stores each family under other names and 1-D shapes. :func:`torchortho_state_dict`
renames and reshapes them into this library's ``state_dict``; :func:`from_torchortho` builds the
equivalent module directly. Outputs are the same for the same parameters::

    >>> from torchortho import HermiteActivation
    >>> old = HermiteActivation(3)
    >>> new = orthoact.from_torchortho(old)          # or from a saved state_dict:
    >>> new = orthoact.from_torchortho(old.state_dict(), family="hermite")

Name mapping (torchortho -> orthoact):

* HermiteActivation: ``coefficients`` -> ``coefficients`` (buffers ``coeffs``/``grid`` dropped), and with
  ``clamp=True`` its ``clamp.lim_val`` -> ``clamp_limit`` (orthoact's ``clamp=True``, the same function);
* FourierActivation: ``fundamental`` -> ``bias``, ``coefficients``, ``grid`` -> ``frequencies``, ``phases``;
* TropicalActivation: ``coefficients`` -> ``offsets`` (buffer ``powers`` must be ``0..n``);
* TropicalRationalActivation: ``powers_num`` -> ``slopes_num``, ``coefficients_num`` -> ``offsets_num``,
  ``powers_denom`` -> ``slopes_den``, ``coefficients_denom`` -> ``offsets_den``.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor, nn

from orthoact.activation import BasisActivation
from orthoact.families import Fourier, Hermite, Rational, Tropical, TropicalRational

_CLASS_TO_FAMILY = {
    "HermiteActivation": "hermite",
    "FourierActivation": "fourier",
    "TropicalActivation": "tropical",
    "TropicalRationalActivation": "tropical_rational",
}

_RENAMES = {
    "hermite": {"coefficients": "coefficients"},
    "fourier": {"fundamental": "bias", "coefficients": "coefficients", "grid": "frequencies", "phases": "phases"},
    "tropical": {"coefficients": "offsets"},
    "tropical_rational": {
        "powers_num": "slopes_num",
        "coefficients_num": "offsets_num",
        "powers_denom": "slopes_den",
        "coefficients_denom": "offsets_den",
    },
}

_CLASSES = {cls.spec.name: cls for cls in (Hermite, Fourier, Tropical, TropicalRational)}  # torchortho's four


def torchortho_state_dict(state_dict: Mapping[str, Tensor], family: str) -> dict[str, Tensor]:
    """Rename and reshape a torchortho 0.1.2 ``state_dict`` of ``family`` into ours (``groups=1``)."""
    if family not in _RENAMES:
        raise ValueError(f"family must be one of {', '.join(map(repr, _RENAMES))}; got {family!r}")
    out = {}
    clamp = {key for key in state_dict if key.startswith("clamp.")}
    if clamp:  # HermiteActivation(clamp=True): LearnableClamp, x -> lim_val (2 sigmoid(x) - 1)
        if clamp != {"clamp.lim_val"}:
            raise ValueError(f"torchortho clamp entries {sorted(clamp)} are not a LearnableClamp's (clamp.lim_val)")
        out["clamp_limit"] = state_dict["clamp.lim_val"].detach().reshape(1, 1).clone()
    for old, new in _RENAMES[family].items():
        if old not in state_dict:
            raise KeyError(f"torchortho state_dict for {family} lacks {old!r}; keys present: {sorted(state_dict)}")
        out[new] = state_dict[old].detach().reshape(1, -1).clone()
    if family == "tropical" and "powers" in state_dict:
        powers = state_dict["powers"]
        if not torch.equal(powers.cpu().to(torch.int64), torch.arange(powers.numel())):
            raise ValueError(f"torchortho TropicalActivation.powers must be 0..n, got {powers.tolist()}")
    return out


def _degree(family: str, state: Mapping[str, Tensor]) -> int:
    if family == "fourier":
        return state["coefficients"].shape[1]
    return state[_RENAMES[family][next(iter(_RENAMES[family]))]].shape[1] - 1


def from_torchortho(obj: nn.Module | Mapping[str, Tensor], family: str | None = None, **kwargs) -> BasisActivation:
    """Build the orthoact module equivalent to a torchortho 0.1.2 module (or its ``state_dict``).

    Args:
        obj: a torchortho activation module, or a ``state_dict`` saved from one (then ``family`` is needed).
        family: ``"hermite"``, ``"fourier"``, ``"tropical"`` or ``"tropical_rational"``; inferred from a module.
        kwargs: passed to the orthoact class (e.g. ``backend``); ``groups`` is always 1.
    """
    if isinstance(obj, nn.Module):
        inferred = _CLASS_TO_FAMILY.get(type(obj).__name__)
        if inferred is None:
            raise TypeError(f"expected a torchortho activation module, got {type(obj).__name__}")
        if family is not None and family != inferred:
            raise ValueError(f"family={family!r} does not match the module's class {type(obj).__name__}")
        family, state_dict = inferred, obj.state_dict()
        clamp = getattr(obj, "clamp", None)
        if clamp is not None and getattr(clamp, "scale", 1.0) != 1.0:
            raise ValueError(f"torchortho LearnableClamp(scale={clamp.scale}) has no equivalent here (scale 1 only)")
    elif isinstance(obj, Mapping):
        if family is None:
            raise ValueError("family is required when converting a state_dict")
        state_dict = obj
    else:
        raise TypeError(f"expected a torchortho module or state_dict, got {type(obj).__name__}")
    state = torchortho_state_dict(state_dict, family)
    reference = next(iter(state.values()))
    kwargs.setdefault("dtype", reference.dtype)
    kwargs.setdefault("clamp", "clamp_limit" in state)
    module = _CLASSES[family](_degree(family, state), **kwargs)
    module.load_state_dict(state)
    return module


def from_rational_activations(obj, version: str | None = None, **kwargs) -> Rational:
    """Build the :class:`~orthoact.Rational` equal to a ``rational-activations`` 0.2.0 ``Rational``
    module (or its ``state_dict`` with ``numerator``/``denominator`` entries, then ``version`` is
    needed): same coefficients, same function.

    Args:
        obj: a ``rational.torch.Rational`` module, or a mapping with ``numerator`` and ``denominator``.
        version: ``"A"`` or ``"B"`` (read from the module when not given).
        kwargs: passed to :class:`~orthoact.Rational` (e.g. ``backend``).
    """
    if isinstance(obj, nn.Module):
        state = {"numerator": obj.numerator, "denominator": obj.denominator}
        version = version or getattr(obj, "version", None)
    elif isinstance(obj, Mapping):
        state = obj
    else:
        raise TypeError(f"expected a rational-activations Rational module or its state_dict, got {type(obj).__name__}")
    if version not in ("A", "B"):
        raise ValueError(f"version must be 'A' or 'B' (the safe denominators orthoact implements), got {version!r}")
    missing = [k for k in ("numerator", "denominator") if k not in state]
    if missing:
        raise KeyError(f"rational-activations state lacks {missing}; keys present: {sorted(state)}")
    numerator = state["numerator"].detach().reshape(1, -1)
    denominator = state["denominator"].detach().reshape(1, -1)
    kwargs.setdefault("dtype", numerator.dtype)
    module = Rational(numerator.shape[1] - 1, denominator.shape[1], version=version, init="identity", **kwargs)
    module.load_state_dict({"numerator": numerator.clone(), "denominator": denominator.clone()})
    return module
