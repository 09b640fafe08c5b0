"""The rational (Padé) family of PAU and KAT: declaration, functional twin, module."""

from __future__ import annotations

from torch import Tensor

from orthoact._dispatch import apply
from orthoact.activation import BasisActivation
from orthoact.basis.rational import (
    FIT_DOMAIN,
    VERSIONS,
    rational_derivative,
    rational_fit_start,
    rational_gains,
    rational_gains_at,
    rational_identity,
    rational_value,
)
from orthoact.declarations import FamilySpec, KernelSpec, Option, ParamSpec, Refine, declare

__all__ = ["Rational", "rational"]


def _kernels(version: str) -> KernelSpec:
    v = version.lower()
    return KernelSpec("rational.h", f"Rational{version}F", "orthoact.ops.kernels.rational", f"forward_{v}", f"backward_{v}",
                      f"forward_d_{v}")


def _parse_degree(text: str) -> dict:
    numerator, sep, denominator = text.partition("/")
    if not sep:
        raise ValueError(f"a rational activation is named 'rational:m/n' (numerator/denominator degrees), got {text!r}")
    return {"numerator": int(numerator), "denominator": int(denominator)}


SPEC = declare(FamilySpec(
    name="rational",
    params=(ParamSpec("numerator", lambda d: d[0] + 1), ParamSpec("denominator", lambda d: d[1])),
    default_degree=(5, 4),
    lr_mult=10.0,  # the trainer's default, chosen by sweeps of 1 vs 10 on both small recipes (docs/RESULTS.md)
    evaluate=lambda x, numerator, denominator, version: rational_value(x, numerator, denominator, version),
    derivative=lambda x, numerator, denominator, version: rational_derivative(x, numerator, denominator, version),
    degree_of=lambda columns: (columns["numerator"] - 1, columns["denominator"]),
    gains=rational_gains,
    gains_at=lambda numerator, denominator, variance, version: rational_gains_at(numerator, denominator, variance, version),
    inits={"identity": lambda degree, version: rational_identity(degree)},
    default_init="gelu",
    fit_start=rational_fit_start,
    fit_domain=lambda degree: FIT_DOMAIN,
    refine=lambda fixed=frozenset(), version="A": Refine("lbfgs", 100),
    kernels=_kernels,
    options=(Option("version", "A", VERSIONS),),
    degree_args=("numerator", "denominator"),
    parse_degree=_parse_degree,
    formula="F(x) = P(x)/Q(x), P = sum_{i<=m} a_i x^i, Q = 1 + sum_j |b_j x^j| (A) or 1 + |sum_j b_j x^j| (B)",
    nan_at_infinity=True,
))


def rational(x: Tensor, numerator: Tensor, denominator: Tensor, channel_dim: int = -1, backend: str | None = None,
             version: str = "A") -> Tensor:
    r"""Rational activation :math:`F(x) = P(x)/Q(x)` with a safe denominator.

    Args:
        x: input of any shape and floating dtype.
        numerator: :math:`a_0..a_m`, ``(groups, m + 1)``.
        denominator: :math:`b_1..b_n`, ``(groups, n)``.
        channel_dim: dimension split into groups. Default: ``-1``
        backend: see :func:`orthoact.functional.hermite`. Default: ``None``
        version: ``"A"`` (:math:`Q = 1 + \sum_j |b_j x^j|`, PAU) or ``"B"``
            (:math:`Q = 1 + |\sum_j b_j x^j|`, KAT). Default: ``"A"``
    """
    return apply(SPEC, x, [numerator, denominator], channel_dim, backend, version=version)


class Rational(BasisActivation):
    r"""Learnable rational (Padé) activation, as PAU's ``rational-activations`` and KAT's group-rational.

    .. math::
        F(x) = \frac{a_0 + a_1 x + \dots + a_m x^m}{Q(x)},\qquad
        Q_A = 1 + \sum_{j=1}^{n} |b_j x^j|,\qquad Q_B = 1 + \Big|\sum_{j=1}^{n} b_j x^j\Big|.

    Both denominators are at least 1 (no poles). The default init is a least-squares fit of GELU in
    value and derivative on :math:`[-3, 3]` (as PAU and KAT start); ``init="identity"`` starts at
    :math:`F(x) = x` (KAT's first activation; its zero denominator does not learn, see
    :func:`orthoact.basis.rational.rational_identity`). Gaussian gains are integrated numerically.
    ``rational-activations`` 0.2.0 computes the same function with ``weight_numerator`` = ``a`` and
    ``weight_denominator`` = ``b`` (see :func:`orthoact.from_rational_activations`).

    Args:
        numerator: numerator degree :math:`m \ge 1`. Default: ``5``
        denominator: denominator degree :math:`n \ge 1`. Default: ``4``
        version: ``"A"`` or ``"B"``. Default: ``"A"``
        groups: number of parameter sets, see :class:`Hermite`. Default: ``1``
        channel_dim: input dimension split into groups. Default: ``-1``
        init: ``"identity"`` or an activation name. Default: ``"gelu"``
        backend: implementation, see :mod:`orthoact.backends`. Default: ``None`` (auto)
        device: device of the parameters. Default: ``None``
        dtype: floating dtype of the parameters. Default: ``None``

    Shape:
        - Input: :math:`(*)`, any shape and floating dtype.
        - Output: :math:`(*)`, same shape and dtype as the input.

    Attributes:
        numerator: :math:`a_i`, shape ``(groups, m + 1)``.
        denominator: :math:`b_j`, shape ``(groups, n)``.

    Examples::

        >>> act = Rational(5, 4)            # GELU-shaped at start
        >>> act(torch.randn(3, 7)).shape
        torch.Size([3, 7])
    """

    spec = SPEC

    def __init__(self, numerator: int = 5, denominator: int = 4, *, version: str = "A", **kwargs) -> None:
        super().__init__((numerator, denominator), version=version, **kwargs)

    @property
    def numerator_degree(self) -> int:
        return self.degree[0]

    @property
    def denominator_degree(self) -> int:
        return self.degree[1]
