"""The tropical rational family (paper, Section 3.3): declaration, functional twin, module."""

from __future__ import annotations

from torch import Tensor, nn

from orthoact._dispatch import apply
from orthoact.activation import BasisActivation
from orthoact.basis.tropical import (
    max_affine,
    tropical_rational_fit_start,
    tropical_rational_gains,
    tropical_rational_gains_at,
)
from orthoact.declarations import FamilySpec, KernelSpec, ParamSpec, Refine, declare

__all__ = ["TropicalRational", "tropical_rational"]

PARAMS = ("slopes_num", "offsets_num", "slopes_den", "offsets_den")

SPEC = declare(FamilySpec(
    name="tropical_rational",
    params=tuple(ParamSpec(name, lambda n: n + 1) for name in PARAMS),
    default_degree=5,
    lr_mult=10.0,  # the trainer's default, chosen by sweeps of 1 vs 10 on both small recipes (docs/RESULTS.md)
    evaluate=lambda x, p, a, q, b: max_affine(x, p, a) - max_affine(x, q, b),
    degree_of=lambda columns: columns["slopes_num"] - 1,
    gains=tropical_rational_gains,
    gains_at=tropical_rational_gains_at,
    # torchortho 0.1.2 draws all four from N(0, 1) (torch's global generator)
    inits={"paper": lambda n: {name: nn.init.normal_ for name in PARAMS}},
    fit_start=tropical_rational_fit_start,
    refine=lambda fixed=frozenset(): Refine("adam", 300),
    kernels=lambda: KernelSpec("tropical_rational.h", "TropicalRationalF",
                               "orthoact.ops.kernels.tropical_rational"),
    formula="F(x) = max_k (p_k x + a_k) - max_k (q_k x + b_k)",
    nan_at_infinity=True,  # inf - inf, and 0 * inf for a zero slope: no usable value at infinity
))


def tropical_rational(
    x: Tensor,
    slopes_num: Tensor,
    offsets_num: Tensor,
    slopes_den: Tensor,
    offsets_den: Tensor,
    channel_dim: int = -1,
    backend: str | None = None,
) -> Tensor:
    r"""Tropical rational function :math:`F(x) = \max_k(p_k x + a_k) - \max_k(q_k x + b_k)`.

    Args:
        x: input of any shape and floating dtype.
        slopes_num, offsets_num, slopes_den, offsets_den: ``(groups, degree + 1)`` each.
        channel_dim: dimension split into groups. Default: ``-1``
        backend: see :func:`orthoact.functional.hermite`. Default: ``None``
    """
    return apply(SPEC, x, [slopes_num, offsets_num, slopes_den, offsets_den], channel_dim, backend)


class TropicalRational(BasisActivation):
    r"""Learnable tropical rational activation (paper, Section 3.3): a difference of two max-plus
    polynomials with learnable slopes.

    .. math::
        F(x) = \max_{k=0..n}(p_k x + a_k) - \max_{k=0..n}(q_k x + b_k).

    Any continuous piecewise-linear function can be written this way, so this family can follow a
    classical activation over a wide input range. Initialisation ``"paper"`` (torchortho 0.1.2):
    all four parameter sets drawn from :math:`\mathcal N(0, 1)` (use ``torch.manual_seed`` for
    reproducibility).

    Args:
        degree: :math:`n \ge 1`, giving :math:`n + 1` affine pieces in each max. Default: ``5``
        groups: number of parameter sets, see :class:`Hermite`. Default: ``1``
        channel_dim: input dimension split into groups. Default: ``-1``
        init: ``"paper"``, or an activation name (``"gelu"``, ...) to start as a fit of it. Default: ``"paper"``
        backend: implementation, see :mod:`orthoact.backends`. Default: ``None`` (auto)
        device: device of the parameters. Default: ``None``
        dtype: floating dtype of the parameters. Default: ``None``

    Shape:
        - Input: :math:`(*)`, any shape and floating dtype.
        - Output: :math:`(*)`, same shape and dtype as the input.

    Attributes:
        slopes_num, offsets_num: :math:`p_k, a_k`, shape ``(groups, degree + 1)``.
        slopes_den, offsets_den: :math:`q_k, b_k`, shape ``(groups, degree + 1)``.

    Examples::

        >>> act = TropicalRational(5)
        >>> act(torch.randn(3, 7)).shape
        torch.Size([3, 7])
    """

    spec = SPEC

    def __init__(self, degree: int = 5, **kwargs) -> None:
        super().__init__(degree, **kwargs)
