"""The tropical (max-plus) polynomial family (paper, Section 3.3): declaration, functional twin, module."""

from __future__ import annotations

from torch import Tensor

from orthoact._dispatch import apply
from orthoact.activation import BasisActivation
from orthoact.basis.tropical import max_affine, tropical_fit_start, tropical_gains, tropical_gains_at, tropical_scale
from orthoact.declarations import FamilySpec, KernelSpec, ParamSpec, Refine, declare

__all__ = ["Tropical", "tropical"]


def _evaluate(x, offsets):
    n = len(offsets) - 1
    return tropical_scale(n) * max_affine(x, [None] + [float(k) for k in range(1, n + 1)], offsets)


SPEC = declare(FamilySpec(
    name="tropical",
    params=(ParamSpec("offsets", lambda n: n + 1),),
    default_degree=5,
    lr_mult=10.0,  # the trainer's default, chosen by sweeps of 1 vs 10 on both small recipes (docs/RESULTS.md)
    evaluate=_evaluate,
    degree_of=lambda columns: columns["offsets"] - 1,
    gains=tropical_gains,
    gains_at=tropical_gains_at,
    inits={"paper": lambda n: {"offsets": [1.0] * (n + 1)}},
    fit_start=tropical_fit_start,
    # F' is piecewise constant in the offsets (zero gradient): refine the values only.
    refine=lambda fixed=frozenset(): Refine("adam", 300, use_derivative=False),
    kernels=lambda: KernelSpec("tropical.h", "TropicalF", "orthoact.ops.kernels.tropical"),
    formula="F(x) = sqrt(2)/n max_{k=0..n} (k x + a_k)",
))


def tropical(x: Tensor, offsets: Tensor, channel_dim: int = -1, backend: str | None = None) -> Tensor:
    r"""Tropical polynomial :math:`F(x) = \frac{\sqrt2}{n}\max_{k=0..n}(kx + a_k)`.

    Args:
        x: input of any shape and floating dtype.
        offsets: ``(groups, degree + 1)``, ``degree >= 1``.
        channel_dim: dimension split into groups. Default: ``-1``
        backend: see :func:`orthoact.functional.hermite`. Default: ``None``
    """
    return apply(SPEC, x, [offsets], channel_dim, backend)


class Tropical(BasisActivation):
    r"""Learnable tropical (max-plus) polynomial activation (paper, Section 3.3).

    .. math::
        F(x) = \frac{\sqrt 2}{n}\max_{k=0..n}(k x + a_k),

    with fixed slopes :math:`k` and learnable offsets :math:`a_k`. Only convex functions are
    representable. Initialisation ``"paper"`` (torchortho 0.1.2): :math:`a_k = 1`, i.e.
    :math:`F = \sqrt2\,\mathrm{relu}(x) + \sqrt2/n`, with :math:`E[F'^2] = 1`.
    The gradient of the max goes to the arg-max (the first one on ties).

    Args:
        degree: highest slope :math:`n \ge 1`. Default: ``5``
        groups: number of offset sets, see :class:`Hermite`. Default: ``1``
        channel_dim: input dimension split into groups. Default: ``-1``
        init: ``"paper"``, or an activation name (``"gelu"``, ...) to start as a fit of it. Default: ``"paper"``
        backend: implementation, see :mod:`orthoact.backends`. Default: ``None`` (auto)
        device: device of the parameters. Default: ``None``
        dtype: floating dtype of the parameters. Default: ``None``

    Shape:
        - Input: :math:`(*)`, any shape and floating dtype.
        - Output: :math:`(*)`, same shape and dtype as the input.

    Attributes:
        offsets: :math:`a_k`, shape ``(groups, degree + 1)``.

    Examples::

        >>> act = Tropical(5)
        >>> act(torch.tensor([-1.0, 2.0])).detach()   # sqrt(2) relu(x) + sqrt(2)/5 at the paper's init
        tensor([0.2828, 3.1113])
    """

    spec = SPEC

    def __init__(self, degree: int = 5, **kwargs) -> None:
        super().__init__(degree, **kwargs)
