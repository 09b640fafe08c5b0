"""The Hermite family (paper, Section 3.1): declaration, functional twin, module."""

from __future__ import annotations

from torch import Tensor

from orthoact._dispatch import apply
from orthoact.activation import BasisActivation
from orthoact.basis.hermite import (
    hermite_fit_start,
    hermite_gains,
    hermite_gains_at,
    hermite_paper_coefficients,
    hermite_series,
    hermite_series_derivative,
    hermite_unit_coefficients,
)
from orthoact.declarations import FamilySpec, KernelSpec, ParamSpec, declare

__all__ = ["Hermite", "hermite"]

SPEC = declare(FamilySpec(
    name="hermite",
    params=(ParamSpec("coefficients", lambda n: n + 1),),
    default_degree=3,
    lr_mult=10.0,  # the trainer's default, chosen by sweeps of 1 vs 10 on both small recipes (docs/RESULTS.md)
    evaluate=lambda x, coefficients: hermite_series(x, coefficients),
    derivative=lambda x, coefficients: hermite_series_derivative(x, coefficients),
    degree_of=lambda columns: columns["coefficients"] - 1,
    gains=hermite_gains,
    gains_at=hermite_gains_at,
    inits={
        "paper": lambda n: {"coefficients": hermite_paper_coefficients(n)},
        "unit": lambda n: {"coefficients": hermite_unit_coefficients(n)},
    },
    fit_start=hermite_fit_start,
    kernels=lambda: KernelSpec("hermite.h", "HermiteF", "orthoact.ops.kernels.hermite",
                                       triton_forward_d="forward_d", triton_value="value"),
    formula="F(x) = sum_{k=0..n} a_k He_k(x)/k!",
    nan_at_infinity=True,
))


def hermite(x: Tensor, coefficients: Tensor, channel_dim: int = -1, backend: str | None = None) -> Tensor:
    r"""Hermite activation :math:`F(x) = \sum_{k=0}^{n} a_k\, He_k(x)/k!`.

    Args:
        x: input of any shape and floating dtype.
        coefficients: ``(groups, degree + 1)``, ``degree >= 1``.
        channel_dim: dimension split into groups. Default: ``-1``
        backend: ``"auto"``, ``"reference"``, ``"fused"`` or ``"triton"``. Default: ``None`` (``auto``,
            or ``ORTHOACT_BACKEND``)
    """
    return apply(SPEC, x, [coefficients], channel_dim, backend)


class Hermite(BasisActivation):
    r"""Learnable Hermite-polynomial activation (paper, Section 3.1).

    .. math::
        F(x) = \sum_{k=0}^{n} a_k\, h_k(x),\qquad h_k = \frac{He_k}{k!},\quad
        h_{k+1} = \frac{x h_k - h_{k-1}}{k+1},\quad h_k' = h_{k-1}.

    Initialisation ``"paper"`` (torchortho 0.1.2): :math:`a_k = e^{-1/2}` for :math:`k \ge 1` and
    :math:`a_0 = e^{-1/2}\sqrt{1 - 1/n!}`, which makes the forward gain :math:`E[F^2]` equal the
    backward gain :math:`E[F'^2]` (both :math:`e^{-1}\sum_{j<n} 1/j!`) for :math:`x\sim\mathcal N(0,1)`.
    ``"unit"`` rescales that init so both gains are exactly 1.

    Args:
        degree: polynomial degree :math:`n \ge 1`. Default: ``3``
        groups: number of coefficient sets; the size of ``channel_dim`` must be divisible by it
            (``groups=1`` is the paper's single shared set per layer). Default: ``1``
        channel_dim: input dimension split into ``groups`` blocks (unused when ``groups=1``). Default: ``-1``
        init: ``"paper"``, ``"unit"``, or an activation name (``"gelu"``, ``"silu"``, ...) to start as a
            least-squares fit of it on :math:`[-\sqrt n, \sqrt n]` (see :func:`orthoact.fit`). Default: ``"paper"``
        backend: implementation, see :mod:`orthoact.backends`. Default: ``None`` (auto)
        device: device of the parameters. Default: ``None`` (PyTorch's default)
        dtype: floating dtype of the parameters. Default: ``None`` (PyTorch's default)

    Shape:
        - Input: :math:`(*)`, any shape and floating dtype.
        - Output: :math:`(*)`, same shape and dtype as the input.

    Attributes:
        coefficients: learnable :math:`a_k`, shape ``(groups, degree + 1)``.

    Examples::

        >>> act = Hermite(3)
        >>> act(torch.randn(4, 16)).shape
        torch.Size([4, 16])
        >>> fwd, bwd = act.gains()   # both 0.920 at degree 3
    """

    spec = SPEC

    def __init__(self, degree: int = 3, **kwargs) -> None:
        super().__init__(degree, **kwargs)
