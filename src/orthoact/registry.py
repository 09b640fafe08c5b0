"""One registry from names to activation classes.

Models and command lines pass activations by name, so every name (the four basis families and the
classical activations a model may want as a baseline) resolves here, once::

    >>> import orthoact
    >>> orthoact.create("hermite:3")          # spec string: family, colon, degree
    Hermite(degree=3, groups=1)
    >>> orthoact.create("gelu")
    GELU(approximate='none')
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from orthoact.modules import Fourier, Hermite, Tropical, TropicalRational

_REGISTRY: dict[str, Callable[..., nn.Module]] = {
    "hermite": Hermite,
    "fourier": Fourier,
    "tropical": Tropical,
    "tropical_rational": TropicalRational,
    "gelu": nn.GELU,
    "gelu_tanh": lambda: nn.GELU(approximate="tanh"),
    "relu": nn.ReLU,
    "silu": nn.SiLU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
    "mish": nn.Mish,
    "leaky_relu": nn.LeakyReLU,
    "elu": nn.ELU,
    "softplus": nn.Softplus,
    "identity": nn.Identity,
}

#: Names of the learnable basis families (the rest of the registry are fixed baselines).
FAMILIES = ("hermite", "fourier", "tropical", "tropical_rational")


def available() -> list[str]:
    """All registered names, the four families first."""
    return list(FAMILIES) + sorted(n for n in _REGISTRY if n not in FAMILIES)


def register(name: str, factory: Callable[..., nn.Module]) -> None:
    """Make ``create(name, ...)`` call ``factory(...)``; the name must be new."""
    if not isinstance(name, str) or not name or ":" in name:
        raise ValueError(f"name must be a non-empty string without ':', got {name!r}")
    if name in _REGISTRY:
        raise ValueError(f"name {name!r} is already registered")
    _REGISTRY[name] = factory


def parse_spec(spec: str) -> tuple[str, dict]:
    """Split ``"family:degree"`` into the name and ``{"degree": int}`` (no colon: no kwargs)."""
    if not isinstance(spec, str):
        raise TypeError(f"activation name must be a string, got {type(spec).__name__}")
    name, sep, rest = spec.strip().partition(":")
    name = name.strip().lower().replace("-", "_")
    if name not in _REGISTRY:
        raise ValueError(f"unknown activation {spec!r}; available: {', '.join(available())}")
    if not sep:
        return name, {}
    if name not in FAMILIES:
        raise ValueError(f"activation {name!r} takes no degree; the spec form 'name:degree' is for {', '.join(FAMILIES)}")
    try:
        degree = int(rest)
    except ValueError:
        raise ValueError(f"degree after ':' in {spec!r} must be an int, e.g. 'hermite:3'") from None
    return name, {"degree": degree}


def create(name: str, **kwargs) -> nn.Module:
    """Build the activation registered as ``name`` (or a spec ``"family:degree"``) with ``kwargs``."""
    name, spec_kwargs = parse_spec(name)
    clash = spec_kwargs.keys() & kwargs.keys()
    if clash:
        raise ValueError(f"degree given twice: in the spec string and as {sorted(clash)[0]}={kwargs['degree']!r}")
    return _REGISTRY[name](**spec_kwargs, **kwargs)


def resolve(activation) -> Callable[[], nn.Module]:
    """Turn a name/spec, a module class or a factory into a zero-argument factory (resolved once)."""
    if isinstance(activation, str):
        name, kwargs = parse_spec(activation)
        return lambda: _REGISTRY[name](**kwargs)
    if isinstance(activation, nn.Module):
        raise TypeError(
            "activation must be a name, a class or a factory, not a module instance "
            "(one instance would be shared by every layer)"
        )
    if callable(activation):
        return activation
    raise TypeError(f"activation must be a name, a class or a factory, got {type(activation).__name__}")
