r"""Stateless functional forms of the activation families.

Parameters have shape ``(groups, n_params)`` (a 1-D tensor is one group). With ``groups > 1`` the
input's ``channel_dim`` is split into ``groups`` consecutive blocks of channels, block ``g`` using
row ``g``; ``channel_dim`` is ignored when ``groups == 1``.

Each function validates its arguments, then dispatches to a backend (see :mod:`orthoact.backends`):
``backend="auto"`` (the default, or the ``ORTHOACT_BACKEND`` environment variable) takes the fastest
correct implementation for the input; ``"reference"`` forces the eager specification.
:func:`apply` runs any declared family by name.

Example::

    >>> import torch, orthoact.functional as OF
    >>> x = torch.linspace(-2, 2, 5)
    >>> OF.hermite(x, torch.tensor([[0.0, 1.0, 0.5]])).shape
    torch.Size([5])
"""

from __future__ import annotations

from torch import Tensor

from orthoact import _dispatch, declarations
from orthoact.families import fourier, hermite, rational, tropical, tropical_rational

__all__ = ["hermite", "fourier", "tropical", "tropical_rational", "rational", "apply"]


def apply(family: str, x: Tensor, *params: Tensor, channel_dim: int = -1, backend: str | None = None,
          **options) -> Tensor:
    """Run the declared family ``family`` (a name) with ``params`` in its declaration order."""
    return _dispatch.apply(declarations.get(family), x, list(params), channel_dim, backend, **options)
