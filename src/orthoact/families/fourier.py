"""The Fourier family (paper, Section 3.2): declaration, functional twin, module."""

from __future__ import annotations

from torch import Tensor

from orthoact._dispatch import apply
from orthoact.activation import BasisActivation
from orthoact.basis.fourier import (
    fourier_fit_start,
    fourier_gains,
    fourier_gains_at,
    fourier_paper_init,
    fourier_series,
    fourier_series_derivative,
)
from orthoact.declarations import FamilySpec, KernelSpec, ParamSpec, Refine, Switch, declare

__all__ = ["Fourier", "fourier"]

SPEC = declare(FamilySpec(
    name="fourier",
    params=(
        ParamSpec("bias", lambda n: 1),
        ParamSpec("coefficients", lambda n: n),
        ParamSpec("frequencies", lambda n: n),
        ParamSpec("phases", lambda n: n),
    ),
    default_degree=5,
    lr_mult=10.0,  # the trainer's default, chosen by sweeps of 1 vs 10 on both small recipes (docs/RESULTS.md)
    evaluate=lambda x, bias, coefficients, frequencies, phases: fourier_series(
        x, bias[0], coefficients, frequencies, phases),
    derivative=lambda x, bias, coefficients, frequencies, phases: fourier_series_derivative(
        x, coefficients, frequencies, phases),
    degree_of=lambda columns: columns["coefficients"],
    gains=fourier_gains,
    gains_at=lambda bias, coefficients, frequencies, phases, variance: fourier_gains_at(
        bias, coefficients, frequencies, phases, variance),
    inits={"paper": fourier_paper_init},
    fit_start=fourier_fit_start,
    # With w_k fixed the least squares start is exact; learned frequencies are refined by L-BFGS.
    refine=lambda fixed=frozenset(): None if "frequencies" in fixed else Refine("lbfgs", 40),
    kernels=lambda: KernelSpec("fourier.h", "FourierF", "orthoact.ops.kernels.fourier",
                               triton_forward_d="forward_d", triton_elements=4),  # a sincos per harmonic
    formula="F(x) = b + sum_{k=1..n} c_k cos(w_k x - phi_k)/k!",
    nan_at_infinity=True,
    switches=(Switch("learn_frequencies", fixes=("frequencies",)),),
))


def fourier(
    x: Tensor,
    bias: Tensor,
    coefficients: Tensor,
    frequencies: Tensor,
    phases: Tensor,
    channel_dim: int = -1,
    backend: str | None = None,
) -> Tensor:
    r"""Fourier activation :math:`F(x) = b + \sum_{k=1}^{n} c_k \cos(w_k x - \varphi_k)/k!`.

    Args:
        x: input of any shape and floating dtype.
        bias: ``(groups, 1)``.
        coefficients, frequencies, phases: ``(groups, degree)`` each.
        channel_dim: dimension split into groups. Default: ``-1``
        backend: see :func:`orthoact.functional.hermite`. Default: ``None``
    """
    return apply(SPEC, x, [bias, coefficients, frequencies, phases], channel_dim, backend)


class Fourier(BasisActivation):
    r"""Learnable truncated-Fourier activation (paper, Section 3.2).

    .. math::
        F(x) = b + \sum_{k=1}^{n} \frac{c_k}{k!}\cos(w_k x - \varphi_k).

    Initialisation ``"paper"`` (torchortho 0.1.2): :math:`c_k = I_0(2)^{-1/2}`,
    :math:`b = I_0(2)^{-1/2}\sqrt{1 - 1/(n!)^2}`, :math:`\varphi_k = \pi/4`, :math:`w_k = k`, with
    :math:`I_0(2) = \sum_k 1/(k!)^2 \approx 2.2796`. Any degree works: :math:`1/k!` is computed in
    floating point (harmonics above about 34 vanish in float32 arithmetic).

    Args:
        degree: number of harmonics :math:`n \ge 1`. Default: ``5``
        groups: number of parameter sets, see :class:`Hermite`. Default: ``1``
        channel_dim: input dimension split into groups. Default: ``-1``
        learn_frequencies: learn :math:`w_k` (as torchortho does); if ``False`` they stay at the
            integers :math:`k` and are stored as a buffer. Default: ``True``
        init: ``"paper"``, or an activation name (``"gelu"``, ...) to start as a fit of it. Default: ``"paper"``
        backend: implementation, see :mod:`orthoact.backends`. Default: ``None`` (auto)
        device: device of the parameters. Default: ``None``
        dtype: floating dtype of the parameters. Default: ``None``

    Shape:
        - Input: :math:`(*)`, any shape and floating dtype.
        - Output: :math:`(*)`, same shape and dtype as the input.

    Attributes:
        bias: :math:`b`, shape ``(groups, 1)``.
        coefficients: :math:`c_k`, shape ``(groups, degree)``.
        frequencies: :math:`w_k`, shape ``(groups, degree)`` (a buffer when not learned).
        phases: :math:`\varphi_k`, shape ``(groups, degree)``.

    Examples::

        >>> act = Fourier(5)
        >>> act(torch.randn(8)).shape
        torch.Size([8])
    """

    spec = SPEC

    def __init__(self, degree: int = 5, *, learn_frequencies: bool = True, **kwargs) -> None:
        super().__init__(degree, learn_frequencies=learn_frequencies, **kwargs)
