r"""Stateless functional forms of the four activation families.

Parameters have shape ``(groups, n_params)`` (a 1-D tensor is one group). With ``groups > 1`` the
input's ``channel_dim`` is split into ``groups`` consecutive blocks of channels, block ``g`` using
row ``g``; ``channel_dim`` is ignored when ``groups == 1``.

Each function validates its arguments, then dispatches to a backend (see :mod:`orthoact.backends`):
``backend="auto"`` (the default, or the ``ORTHOACT_BACKEND`` environment variable) takes the fastest
correct implementation for the input; ``"reference"`` forces the eager specification.

Example::

    >>> import torch, orthoact.functional as OF
    >>> x = torch.linspace(-2, 2, 5)
    >>> OF.hermite(x, torch.tensor([[0.0, 1.0, 0.5]])).shape
    torch.Size([5])
"""

from __future__ import annotations

from torch import Tensor

from orthoact import _validation as V
from orthoact.backends import select

__all__ = ["hermite", "fourier", "tropical", "tropical_rational"]


def _prepare(x: Tensor, channel_dim: int, **params: Tensor) -> dict[str, Tensor]:
    V.check_input(x)
    channel_dim = V.check_int("channel_dim", channel_dim)
    mats = {name: V.as_parameter_matrix(name, p) for name, p in params.items()}
    groups = V.check_same_groups(**mats)
    V.check_device(x, **mats)
    V.check_groups_fit(x, groups, channel_dim)
    return mats


def hermite(x: Tensor, coefficients: Tensor, channel_dim: int = -1, backend: str | None = None) -> Tensor:
    r"""Hermite activation :math:`F(x) = \sum_{k=0}^{n} a_k\, He_k(x)/k!`.

    Args:
        x: input of any shape and floating dtype.
        coefficients: ``(groups, degree + 1)``.
        channel_dim: dimension split into groups. Default: ``-1``
        backend: ``"auto"``, ``"reference"``, ``"fused"`` or ``"triton"``. Default: ``None`` (``auto``,
            or ``ORTHOACT_BACKEND``)
    """
    p = _prepare(x, channel_dim, coefficients=coefficients)
    return select("hermite", backend, x)(x, p["coefficients"], channel_dim)


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
        backend: see :func:`hermite`. Default: ``None``
    """
    p = _prepare(x, channel_dim, bias=bias, coefficients=coefficients, frequencies=frequencies, phases=phases)
    if p["bias"].shape[1] != 1:
        raise ValueError(f"bias must have shape (groups, 1), got {tuple(p['bias'].shape)}")
    n = p["coefficients"].shape[1]
    for name in ("frequencies", "phases"):
        if p[name].shape[1] != n:
            raise ValueError(
                f"{name} must have shape (groups, {n}) like coefficients, got {tuple(p[name].shape)}"
            )
    return select("fourier", backend, x)(
        x, p["bias"], p["coefficients"], p["frequencies"], p["phases"], channel_dim
    )


def tropical(x: Tensor, offsets: Tensor, channel_dim: int = -1, backend: str | None = None) -> Tensor:
    r"""Tropical polynomial :math:`F(x) = \frac{\sqrt2}{n}\max_{k=0..n}(kx + a_k)`.

    Args:
        x: input of any shape and floating dtype.
        offsets: ``(groups, degree + 1)``, ``degree >= 1``.
        channel_dim: dimension split into groups. Default: ``-1``
        backend: see :func:`hermite`. Default: ``None``
    """
    p = _prepare(x, channel_dim, offsets=offsets)
    if p["offsets"].shape[1] < 2:
        raise ValueError(f"offsets must have at least 2 columns (degree >= 1), got shape {tuple(p['offsets'].shape)}")
    return select("tropical", backend, x)(x, p["offsets"], channel_dim)


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
        backend: see :func:`hermite`. Default: ``None``
    """
    p = _prepare(
        x, channel_dim, slopes_num=slopes_num, offsets_num=offsets_num, slopes_den=slopes_den, offsets_den=offsets_den
    )
    shapes = {name: tuple(t.shape) for name, t in p.items()}
    if len(set(shapes.values())) != 1:
        raise ValueError(f"slopes_num, offsets_num, slopes_den and offsets_den must have one shape, got {shapes}")
    return select("tropical_rational", backend, x)(
        x, p["slopes_num"], p["offsets_num"], p["slopes_den"], p["offsets_den"], channel_dim
    )
