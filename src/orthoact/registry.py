"""One registry from names to activation classes.

Models and command lines pass activations by name, so every name (the declared basis families and
the classical activations a model may want as a baseline) resolves here, once::

    >>> import orthoact
    >>> orthoact.create("hermite:3")          # spec string: family, colon, degree
    Hermite(degree=3, groups=1)
    >>> orthoact.create("rational:5/4")       # a rational function's numerator/denominator degrees
    Rational(numerator=5, denominator=4, groups=1)
    >>> orthoact.create("gelu")
    GELU(approximate='none')
    >>> orthoact.create("hermite:3(init=gelu, groups=4)")   # keyword options in parentheses
    Hermite(degree=3, groups=4, init='gelu')

The families come from their declarations (:mod:`orthoact.declarations`); nothing here lists them.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

import orthoact.families  # noqa: F401  (declares the shipped families)
from orthoact import declarations
from orthoact.targets import CLASSICAL

_USER: dict[str, Callable[..., nn.Module]] = {}


def family_names() -> tuple[str, ...]:
    """Names of the declared (learnable basis) families, in declaration order: the one list of them."""
    return tuple(spec.name for spec in declarations.specs())


def _factories() -> dict[str, Callable[..., nn.Module]]:
    out = {spec.name: spec.module for spec in declarations.specs() if spec.module is not None}
    return {**out, **{name: c.module for name, c in CLASSICAL.items()}, **_USER}


def available() -> list[str]:
    """All registered names, the families first."""
    names = family_names()
    return list(names) + sorted(n for n in _factories() if n not in names)


def register(name: str, factory: Callable[..., nn.Module]) -> None:
    """Make ``create(name, ...)`` call ``factory(...)``; the name must be new."""
    if not isinstance(name, str) or not name or ":" in name:
        raise ValueError(f"name must be a non-empty string without ':', got {name!r}")
    if name in _factories():
        raise ValueError(f"name {name!r} is already registered")
    _USER[name] = factory


def _value(text: str):
    """A keyword option's value: int, float, true/false/none, else the string."""
    lowered = text.strip().lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered == "none":
        return None
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text.strip().strip("'\"")


def _options(text: str, spec: str) -> dict:
    out = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, sep, value = item.partition("=")
        if not sep or not key.strip().isidentifier():
            raise ValueError(f"options in {spec!r} must be key=value pairs, e.g. 'hermite:3(init=gelu)'; got {item!r}")
        out[key.strip()] = _value(value)
    return out


def parse_spec(spec: str) -> tuple[str, dict]:
    """Split ``"family:degree(key=value, ...)"`` into the name and its constructor arguments (the
    degree part and the options are both optional)."""
    if not isinstance(spec, str):
        raise TypeError(f"activation name must be a string, got {type(spec).__name__}")
    spec = spec.strip()
    options = {}
    if spec.endswith(")") and "(" in spec:
        spec, _, inside = spec[:-1].partition("(")
        options = _options(inside, spec + "(" + inside + ")")
    name, kwargs = _parse_name(spec)
    clash = kwargs.keys() & options.keys()
    if clash:
        raise ValueError(f"{sorted(clash)[0]} given twice in {spec!r}")
    return name, {**kwargs, **options}


def _parse_name(spec: str) -> tuple[str, dict]:
    name, sep, rest = spec.strip().partition(":")
    name = name.strip().lower().replace("-", "_")
    if name not in _factories():
        raise ValueError(f"unknown activation {spec!r}; available: {', '.join(available())}")
    if not sep:
        return name, {}
    if name not in family_names():
        raise ValueError(f"activation {name!r} takes no degree; the spec form 'name:degree' is for {', '.join(family_names())}")
    declaration = declarations.get(name)
    try:
        if declaration.parse_degree is not None:
            return name, declaration.parse_degree(rest.strip())
        return name, {"degree": int(rest)}
    except ValueError as error:
        example = f"{name}:{declaration.degree_text(declaration.default_degree)}"
        raise ValueError(f"degree after ':' in {spec!r} must be an int, e.g. '{example}' ({error})") from None


def create(name: str, **kwargs) -> nn.Module:
    """Build the activation registered as ``name`` (or a spec ``"family:degree"``) with ``kwargs``."""
    name, spec_kwargs = parse_spec(name)
    clash = spec_kwargs.keys() & kwargs.keys()
    if clash:
        key = sorted(clash)[0]
        what = "degree" if key in ("degree", "numerator", "denominator") else key
        raise ValueError(f"{what} given twice: in the spec string and as {key}={kwargs[key]!r}")
    return _factories()[name](**spec_kwargs, **kwargs)


def resolve(activation) -> Callable[[], nn.Module]:
    """Turn a name/spec, a module class or a factory into a zero-argument factory (resolved once)."""
    if isinstance(activation, str):
        name, kwargs = parse_spec(activation)
        factory = _factories()[name]
        return lambda: factory(**kwargs)
    if isinstance(activation, nn.Module):
        raise TypeError(
            "activation must be a name, a class or a factory, not a module instance "
            "(one instance would be shared by every layer)"
        )
    if callable(activation):
        return activation
    raise TypeError(f"activation must be a name, a class or a factory, got {type(activation).__name__}")
