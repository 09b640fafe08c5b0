r"""``nn.Module`` shells of the four families: parameters, initialisation, gains and ``repr``.

Each module is a thin stateful wrapper over its functional twin in :mod:`orthoact.functional`.
Reference: Khalfaoui-Hassani & Kesselheim, "Polynomial, trigonometric, and tropical activations",
arXiv 2502.01247 (ICLR 2026).
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import Tensor, nn

from orthoact import _validation as V
from orthoact import functional as OF
from orthoact.backends import resolve_backend_name
from orthoact.targets import TARGETS
from orthoact.basis import (
    fourier_gains,
    fourier_paper_init,
    hermite_gains,
    hermite_paper_coefficients,
    hermite_unit_coefficients,
    tropical_gains,
    tropical_rational_gains,
)

__all__ = ["BasisActivation", "Hermite", "Fourier", "Tropical", "TropicalRational"]


class BasisActivation(nn.Module):
    """Common shell: ``degree``, ``groups``, ``channel_dim``, ``init`` and ``backend`` handling.

    Subclasses declare their parameters in ``_make_parameters`` and set them in ``reset_parameters``.
    """

    family: ClassVar[str]
    inits: ClassVar[tuple[str, ...]] = ("paper",)
    default_degree: ClassVar[int]

    def __init__(
        self,
        degree: int,
        *,
        groups: int = 1,
        channel_dim: int = -1,
        init: str = "paper",
        backend: str | None = None,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        self.degree = V.check_positive_int("degree", degree)
        self.groups = V.check_positive_int("groups", groups)
        self.channel_dim = V.check_int("channel_dim", channel_dim)
        self.init = V.check_choice("init", init, self.inits + tuple(TARGETS))
        if backend is not None:
            resolve_backend_name(backend)
        self.backend = backend
        factory = {"device": device, "dtype": dtype}
        if dtype is not None and not torch.empty((), dtype=dtype).is_floating_point():
            raise TypeError(f"dtype must be a floating-point dtype, got {dtype}")
        self._make_parameters(factory)
        self.reset_parameters()

    def _make_parameters(self, factory: dict) -> None:
        raise NotImplementedError

    def reset_parameters(self) -> None:
        """Re-initialise: the family's own init, or a least-squares fit when ``init`` names an activation."""
        if self.init in TARGETS:
            self._init_from_fit()
        else:
            self._default_init()

    def _default_init(self) -> None:
        raise NotImplementedError

    def _fit_kwargs(self) -> dict:
        return {}

    def _init_from_fit(self) -> None:
        from orthoact.fit import fit

        fitted, _ = fit(self.init, self.family, self.degree, dtype=torch.float64, backend="reference", **self._fit_kwargs())
        with torch.no_grad():
            for name, value in list(fitted.named_parameters()) + list(fitted.named_buffers()):
                getattr(self, name).copy_(value.expand_as(getattr(self, name)))

    def gains(self) -> tuple[Tensor, Tensor]:
        r"""``(E[F(x)^2], E[F'(x)^2])`` for :math:`x \sim \mathcal N(0,1)`, each of shape ``(groups,)``.

        Exact (closed form or exact piecewise integration), float64, differentiable in the parameters.
        """
        raise NotImplementedError

    def _extra_options(self) -> list[str]:
        return []

    def extra_repr(self) -> str:
        parts = [f"degree={self.degree}", f"groups={self.groups}"]
        if self.channel_dim != -1:
            parts.append(f"channel_dim={self.channel_dim}")
        if self.init != "paper":
            parts.append(f"init={self.init!r}")
        parts += self._extra_options()
        if self.backend is not None:
            parts.append(f"backend={self.backend!r}")
        return ", ".join(parts)

    def _fill_rows(self, param: Tensor, values: list[float]) -> None:
        """Set every group's row to the same initial values."""
        with torch.no_grad():
            row = torch.tensor(values, dtype=torch.float64)
            param.copy_(row.expand_as(param))


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

    family = "hermite"
    inits = ("paper", "unit")
    default_degree = 3

    def __init__(self, degree: int = 3, **kwargs) -> None:
        super().__init__(degree, **kwargs)

    def _make_parameters(self, factory: dict) -> None:
        self.coefficients = nn.Parameter(torch.empty(self.groups, self.degree + 1, **factory))

    def _default_init(self) -> None:
        if self.init == "unit":
            values = hermite_unit_coefficients(self.degree)
        else:
            values = hermite_paper_coefficients(self.degree)
        self._fill_rows(self.coefficients, values)

    def forward(self, x: Tensor) -> Tensor:
        return OF.hermite(x, self.coefficients, self.channel_dim, backend=self.backend)

    def gains(self) -> tuple[Tensor, Tensor]:
        return hermite_gains(self.coefficients)


class Fourier(BasisActivation):
    r"""Learnable truncated-Fourier activation (paper, Section 3.2).

    .. math::
        F(x) = b + \sum_{k=1}^{n} \frac{c_k}{k!}\cos(w_k x - \varphi_k).

    Initialisation ``"paper"`` (torchortho 0.1.2): :math:`c_k = I_0(2)^{-1/2}`,
    :math:`b = I_0(2)^{-1/2}\sqrt{1 - 1/(n!)^2}`, :math:`\varphi_k = \pi/4`, :math:`w_k = k`, with
    :math:`I_0(2) = \sum_k 1/(k!)^2 \approx 2.2796`.

    Args:
        degree: number of harmonics :math:`n \ge 1`. Default: ``5``
        groups: number of parameter sets, see :class:`Hermite`. Default: ``1``
        channel_dim: input dimension split into groups. Default: ``-1``
        learn_frequencies: learn :math:`w_k` (as torchortho does); if ``False`` they stay at the
            integers :math:`k` and are stored as a buffer. Default: ``True``
        init: ``"paper"``, or an activation name (``"gelu"``, ...) to start as a fit of it. Default: ``"paper"``
        backend: implementation, see :mod:`orthoact.backends`. Default: ``None`` (auto)

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

    family = "fourier"
    default_degree = 5

    def __init__(self, degree: int = 5, *, learn_frequencies: bool = True, **kwargs) -> None:
        if not isinstance(learn_frequencies, bool):
            raise TypeError(f"learn_frequencies must be a bool, got {learn_frequencies!r}")
        self.learn_frequencies = learn_frequencies
        super().__init__(degree, **kwargs)

    def _make_parameters(self, factory: dict) -> None:
        g, n = self.groups, self.degree
        self.bias = nn.Parameter(torch.empty(g, 1, **factory))
        self.coefficients = nn.Parameter(torch.empty(g, n, **factory))
        frequencies = torch.empty(g, n, **factory)
        if self.learn_frequencies:
            self.frequencies = nn.Parameter(frequencies)
        else:
            self.register_buffer("frequencies", frequencies)
        self.phases = nn.Parameter(torch.empty(g, n, **factory))

    def _fit_kwargs(self) -> dict:
        return {"learn_frequencies": self.learn_frequencies}

    def _default_init(self) -> None:
        values = fourier_paper_init(self.degree)
        for name, row in values.items():
            self._fill_rows(getattr(self, name), row)

    def forward(self, x: Tensor) -> Tensor:
        return OF.fourier(
            x, self.bias, self.coefficients, self.frequencies, self.phases, self.channel_dim, backend=self.backend
        )

    def gains(self) -> tuple[Tensor, Tensor]:
        return fourier_gains(self.bias, self.coefficients, self.frequencies, self.phases)

    def _extra_options(self) -> list[str]:
        return [] if self.learn_frequencies else ["learn_frequencies=False"]


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

    Shape:
        - Input: :math:`(*)`, any shape and floating dtype.
        - Output: :math:`(*)`, same shape and dtype as the input.

    Attributes:
        offsets: :math:`a_k`, shape ``(groups, degree + 1)``.

    Examples::

        >>> act = Tropical(5)
        >>> act(torch.tensor([-1.0, 2.0]))
        tensor([0.2828, 3.1113], grad_fn=<ToCopyBackward0>)
    """

    family = "tropical"
    default_degree = 5

    def __init__(self, degree: int = 5, **kwargs) -> None:
        super().__init__(degree, **kwargs)

    def _make_parameters(self, factory: dict) -> None:
        self.offsets = nn.Parameter(torch.empty(self.groups, self.degree + 1, **factory))

    def _default_init(self) -> None:
        self._fill_rows(self.offsets, [1.0] * (self.degree + 1))

    def forward(self, x: Tensor) -> Tensor:
        return OF.tropical(x, self.offsets, self.channel_dim, backend=self.backend)

    def gains(self) -> tuple[Tensor, Tensor]:
        return tropical_gains(self.offsets)


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

    family = "tropical_rational"
    default_degree = 5
    parameter_names = ("slopes_num", "offsets_num", "slopes_den", "offsets_den")

    def __init__(self, degree: int = 5, **kwargs) -> None:
        super().__init__(degree, **kwargs)

    def _make_parameters(self, factory: dict) -> None:
        for name in self.parameter_names:
            setattr(self, name, nn.Parameter(torch.empty(self.groups, self.degree + 1, **factory)))

    def _default_init(self) -> None:
        with torch.no_grad():
            for name in self.parameter_names:
                nn.init.normal_(getattr(self, name))

    def forward(self, x: Tensor) -> Tensor:
        return OF.tropical_rational(
            x, self.slopes_num, self.offsets_num, self.slopes_den, self.offsets_den, self.channel_dim,
            backend=self.backend,
        )

    def gains(self) -> tuple[Tensor, Tensor]:
        return tropical_rational_gains(self.slopes_num, self.offsets_num, self.slopes_den, self.offsets_den)
