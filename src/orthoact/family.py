"""Declaring an activation family once.

A family is a :class:`FamilySpec`: its name, its parameters in kernel order with their shapes, its
degree(s), its initialisations, its reference formula, its exact Gaussian gains, its fitting start
and its kernels. Everything else in the library (the reference dispatcher, the fast paths, the
functional API, the modules, the registry, fitting, gain analysis, the tests' and benchmarks'
parameter lists) is derived from the declarations registered here with :func:`declare`.

This module is pure data: no ``nn.Module``, no autograd, no kernels. The declarations themselves
live in :mod:`orthoact.families` (one file per family).
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from torch import Tensor

#: A family's degree: one int, or a pair such as a rational function's (numerator, denominator).
Degree = Any


class FamilyCode(enum.IntEnum):
    """Kernel codes, named once here: the C++ dispatch table (``families.inc``) is generated from
    them and the Triton launcher passes each family's functions, so neither repeats a number."""

    HERMITE = 0
    FOURIER = 1
    TROPICAL = 2
    TROPICAL_RATIONAL = 3
    RATIONAL_A = 4
    RATIONAL_B = 5


@dataclass(frozen=True)
class ParamSpec:
    """One parameter tensor of shape ``(groups, columns(degree))``."""

    name: str
    columns: Callable[[Degree], int]


@dataclass(frozen=True)
class KernelSpec:
    """Where a family's fast kernels are.

    ``cpp_struct`` is the C++ template (``template <typename T, int N> struct ...``) defined in
    ``ops/kernels/<cpp_header>``; ``triton_module`` holds the Triton functions ``triton_forward`` and
    ``triton_backward`` (and optionally host-side ``prepare(params, degree)`` and
    ``aux(params, degree)``). ``nan_at_infinity``: +-inf inputs are treated as NaN (as the reference).
    """

    code: FamilyCode
    cpp_header: str
    cpp_struct: str
    triton_module: str
    triton_forward: str = "forward"
    triton_backward: str = "backward"


@dataclass(frozen=True)
class Option:
    """A non-learnable setting passed to the formula and the kernels (e.g. a rational's version)."""

    name: str
    default: Any
    allowed: tuple


@dataclass(frozen=True)
class Refine:
    """Optimisation after a fit's closed-form start: ``method`` is ``"adam"`` or ``"lbfgs"``."""

    method: str
    steps: int
    use_derivative: bool = True
    lr: float = 0.01


@dataclass
class FamilySpec:
    """Everything the library needs to know about one family.

    Attributes:
        name: registry name (``"hermite"``).
        params: parameters in kernel order.
        default_degree: the degree used when none is given.
        evaluate: ``evaluate(x, *columns, degree=..., **options)``, the reference formula on
            parameter columns that broadcast against ``x`` (pure tensor code, autograd gives the
            derivatives); see :mod:`orthoact.reference`.
        degree_of: the degree from the parameter shapes ``{name: columns}``.
        gains: ``gains(*params, **options) -> (E[F^2], E[F'^2])`` for x ~ N(0, 1), each ``(groups,)``.
        inits: named initialisations: ``init(degree, **options) -> {param: values}``, each value a
            list or tensor (the same for every group) or an in-place initializer such as
            ``nn.init.normal_`` (random inits, drawn from torch's global generator).
        lr_mult: the multiplier of the learning rate of this family's parameters that the trainer uses
            when ``train.act_lr_mult`` is not given (tuned on the small recipes, see docs/RESULTS.md).
        fit_domain: the default domain of a fit (``None``: [-sqrt(n), sqrt(n)] as the paper).
        default_init: the init a module gets when none is named (``"paper"``, or a target such as
            ``"gelu"`` to start as its least-squares fit).
        fit_start: ``fit_start(x, w, f, df, degree, match_derivative, **options) -> {param: 1-D tensor}``.
        refine: ``refine(fixed, **options) -> Refine | None``: the optimisation after the fit start
            (``fixed``: names of parameters that are not learned).
        kernels: ``kernels(**options) -> KernelSpec``.
        min_degree: the smallest degree (checked on every call).
        options: non-learnable settings.
        formula: one line for docstrings and errors.
        degree_args: the constructor's degree argument names (``("degree",)`` or
            ``("numerator", "denominator")``); ``parse_degree`` turns the text after ``name:``
            into those arguments.
        nan_at_infinity: +-inf inputs are treated as NaN (a polynomial, Fourier series or rational
            function has no usable value there); otherwise the formula's IEEE result stands.
        gains_at: ``gains_at(params, variance) -> (E[F^2], E[F'^2])`` for x ~ N(0, variance)
            (group 0); ``None`` uses numerical integration of the reference.
    """

    name: str
    params: tuple[ParamSpec, ...]
    default_degree: Degree
    evaluate: Callable[..., Tensor]
    degree_of: Callable[[dict[str, int]], Degree]
    gains: Callable[..., tuple[Tensor, Tensor]]
    inits: dict[str, Callable[..., dict[str, list[float]]]]
    fit_start: Callable[..., dict[str, Tensor]]
    kernels: Callable[..., KernelSpec]
    formula: str
    refine: Callable[..., Refine | None] = lambda fixed=frozenset(), **_: None
    min_degree: int = 1
    nan_at_infinity: bool = False
    default_init: str = "paper"
    fit_domain: Callable[[Degree], tuple[float, float]] | None = None
    lr_mult: float = 1.0
    options: tuple[Option, ...] = ()
    degree_args: tuple[str, ...] = ("degree",)
    parse_degree: Callable[[str], dict] | None = None
    gains_at: Callable | None = None
    module: type | None = field(default=None, repr=False)  # the nn.Module class, attached by the class

    @property
    def param_names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.params)

    def columns(self, degree: Degree) -> dict[str, int]:
        return {p.name: p.columns(degree) for p in self.params}

    def degree_values(self, degree: Degree) -> tuple[int, ...]:
        return tuple(degree) if isinstance(degree, tuple) else (degree,)

    def kernel_degree(self, degree: Degree) -> int:
        """The degree the kernels specialise on (the first one)."""
        return self.degree_values(degree)[0]

    def degree_text(self, degree: Degree) -> str:
        return "/".join(str(d) for d in self.degree_values(degree))

    def option_values(self, **given) -> dict:
        """Options with defaults filled in; unknown or disallowed values raise."""
        out = {}
        for option in self.options:
            value = given.pop(option.name, option.default)
            if value not in option.allowed:
                allowed = ", ".join(repr(a) for a in option.allowed)
                raise ValueError(f"{option.name} must be one of {allowed}; got {value!r}")
            out[option.name] = value
        if given:
            raise TypeError(f"{self.name} has no option {sorted(given)[0]!r}")
        return out


_SPECS: dict[str, FamilySpec] = {}


def declare(spec: FamilySpec) -> FamilySpec:
    """Register a family (its name must be new)."""
    if spec.name in _SPECS:
        raise ValueError(f"family {spec.name!r} is already declared")
    _SPECS[spec.name] = spec
    return spec


def get(name: str) -> FamilySpec:
    """The declaration of a family; unknown names raise (there is no fallback family)."""
    try:
        return _SPECS[name]
    except KeyError:
        allowed = ", ".join(repr(n) for n in _SPECS)
        raise ValueError(f"family must be one of {allowed}; got {name!r}") from None


def specs() -> tuple[FamilySpec, ...]:
    """Every declared family, in declaration order."""
    return tuple(_SPECS.values())


def names() -> tuple[str, ...]:
    return tuple(_SPECS)
