"""Declaring an activation family once.

A family is a :class:`FamilySpec`: its name, its parameters in kernel order with their shapes, its
degree(s), its initialisations, its reference formula, its exact Gaussian gains, its fitting start
and, optionally, its kernels. Everything else in the library (the reference dispatcher, the fast
paths, the functional API, the modules, the registry, fitting, gain analysis, the tests' and
benchmarks' parameter lists) is derived from the declarations registered here with :func:`declare`.
A family without kernels works everywhere on the reference implementation.

This module is pure data: no ``nn.Module``, no autograd, no kernels. The shipped declarations live
in :mod:`orthoact.families` (one file per family); any code may declare more.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from torch import Tensor

#: A family's degree: one int, or a pair such as a rational function's (numerator, denominator).
Degree = Any


@dataclass(frozen=True)
class ParamSpec:
    """One parameter tensor of shape ``(groups, columns(degree))``."""

    name: str
    columns: Callable[[Degree], int]


@dataclass(frozen=True)
class KernelSpec:
    """Where the fast kernels of one family variant (one combination of its options) are.

    ``cpp_struct`` is the C++ template (``template <typename T, int N> struct ...``) defined in
    ``cpp_header`` (a file name in ``orthoact/ops/kernels/`` or an absolute path); ``triton_module``
    holds the Triton functions ``triton_forward`` and ``triton_backward`` (and optionally host-side
    ``prepare(params, degree)`` and ``aux(params, degree)``). Either may be ``None``: that backend then
    does not run the family. The kernels' numeric codes are assigned from the declarations (see
    :func:`orthoact.ops.kernel_table`), never written by hand.
    """

    cpp_header: str | None
    cpp_struct: str | None
    triton_module: str | None
    triton_forward: str = "forward"
    triton_backward: str = "backward"
    triton_forward_d: str | None = None  # F and F' together (families that take a domain)
    # F on the raw parameters, for the backward that writes the value too (orthoact.nn's recompute);
    # None: triton_forward, which then must read raw parameters (no host-side prepare)
    triton_value: str | None = None
    triton_elements: int = 8  # elements per thread of the plain Triton forward (fewer for a heavy formula)


@dataclass(frozen=True)
class Option:
    """A non-learnable setting passed to the formula and the kernels (e.g. a rational's version)."""

    name: str
    default: Any
    allowed: tuple


@dataclass(frozen=True)
class Switch:
    """A boolean constructor option of the module that keeps some parameters fixed when ``False``
    (stored as buffers, not learned, left out of fits), e.g. Fourier's ``learn_frequencies``."""

    name: str
    fixes: tuple[str, ...]
    default: bool = True


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
        kernels: ``kernels(**options) -> KernelSpec``, or ``None`` (the reference runs it everywhere).
        min_degree: the smallest degree (checked on every call).
        options: non-learnable settings passed to the formula and the kernels.
        switches: boolean module options that keep parameters fixed (see :class:`Switch`).
        formula: one line for docstrings and errors.
        degree_args: the constructor's degree argument names (``("degree",)`` or
            ``("numerator", "denominator")``); ``parse_degree`` turns the text after ``name:``
            into those arguments.
        nan_at_infinity: +-inf inputs are treated as NaN (a polynomial, Fourier series or rational
            function has no usable value there); otherwise the formula's IEEE result stands.
        gains_at: ``gains_at(params, variance) -> (E[F^2], E[F'^2])`` for x ~ N(0, variance)
            (group 0); ``None`` uses numerical integration of the reference.
        derivative: ``derivative(x, *columns, **options) -> F'(x)``, the formula's derivative in the
            form of ``evaluate``; a family that declares it takes a ``domain`` (the linear extension
            outside it, see :mod:`orthoact.inputs`).
    """

    name: str
    params: tuple[ParamSpec, ...]
    default_degree: Degree
    evaluate: Callable[..., Tensor]
    degree_of: Callable[[dict[str, int]], Degree]
    gains: Callable[..., tuple[Tensor, Tensor]]
    inits: dict[str, Callable[..., dict[str, list[float]]]]
    fit_start: Callable[..., dict[str, Tensor]]
    formula: str
    kernels: Callable[..., KernelSpec] | None = None
    refine: Callable[..., Refine | None] = lambda fixed=frozenset(), **_: None
    min_degree: int = 1
    nan_at_infinity: bool = False
    default_init: str = "paper"
    fit_domain: Callable[[Degree], tuple[float, float]] | None = None
    lr_mult: float = 1.0
    options: tuple[Option, ...] = ()
    switches: tuple[Switch, ...] = ()
    degree_args: tuple[str, ...] = ("degree",)
    parse_degree: Callable[[str], dict] | None = None
    gains_at: Callable | None = None
    derivative: Callable[..., Tensor] | None = None
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


def undeclare(name: str) -> None:
    """Remove a declared family (for families declared temporarily, e.g. in tests)."""
    _SPECS.pop(name, None)


def get(name: str) -> FamilySpec:
    """The declaration of a family; unknown names raise (there is no fallback family)."""
    try:
        return _SPECS[name]
    except KeyError:
        allowed = ", ".join(repr(n) for n in _SPECS)
        raise ValueError(f"family must be one of {allowed}; got {name!r}") from None


def specs() -> tuple[FamilySpec, ...]:
    """Every declared family, in declaration order (their names: :func:`orthoact.family_names`)."""
    return tuple(_SPECS.values())
