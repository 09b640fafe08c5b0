r"""What happens to the input before a family's formula: the learnable clamp and the linear
extension outside a domain (both off by default: the paper's functions).

* **clamp** (torchortho's ``LearnableClamp``): :math:`u = \ell\,(2\sigma(x) - 1) = \ell \tanh(x/2)`, with
  a learnable limit :math:`\ell` per group (``clamp_limit``, initially :math:`\sqrt 3` as torchortho);
  the family then sees :math:`u \in (-\ell, \ell)`. Otherwise :math:`u = x`.
* **domain** :math:`[lo, hi]`: inside it the activation is the family's formula; outside it continues
  along its tangent at the nearer end, so it grows linearly (C1), as GELU does:

  .. math::
      y = F(c) + F'(c)\,(u - c),\qquad c = \min(\max(u, lo), hi).

  Then :math:`dy/du = F'(c)` everywhere, and a parameter's gradient is
  :math:`\partial F/\partial\theta(c) + (u - c)\,\partial F'/\partial\theta(c)`. It needs the family's
  derivative formula (:attr:`~orthoact.declarations.FamilySpec.derivative`): Hermite, Fourier and the
  rational family declare one; the tropical families already grow linearly.

Both compose (clamp first). Every backend follows the same rules; the fast paths save only ``x``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from orthoact.declarations import FamilySpec

__all__ = ["InputMap", "parse_domain", "CLAMP_INIT"]

#: torchortho's initial clamp limit.
CLAMP_INIT = math.sqrt(3.0)


@dataclass(frozen=True)
class InputMap:
    """The input's way to the formula: ``domain`` (``None`` or ``(lo, hi)``) and ``clamp``."""

    domain: tuple[float, float] | None = None
    clamp: bool = False

    @property
    def identity(self) -> bool:
        return self.domain is None and not self.clamp

    @property
    def flags(self) -> int:
        """As the kernels take it: bit 0 clamp, bit 1 domain."""
        return int(self.clamp) | (2 if self.domain is not None else 0)

    @property
    def bounds(self) -> list[float]:
        return list(self.domain) if self.domain is not None else []

    @classmethod
    def from_flags(cls, flags: int, bounds) -> InputMap:
        return cls(tuple(bounds) if flags & 2 else None, bool(flags & 1))

    def check(self, spec: FamilySpec) -> InputMap:
        if self.domain is not None and spec.derivative is None:
            with_derivative = [s.name for s in _specs() if s.derivative is not None]
            raise ValueError(f"domain is not available for {spec.name}: it needs the family's derivative formula "
                             f"(families with one: {', '.join(with_derivative)}; the tropical families already grow "
                             "linearly outside any range)")
        return self


def _specs():
    from orthoact import declarations

    return declarations.specs()


def parse_domain(value) -> tuple[float, float] | None:
    """``None``, a pair ``(lo, hi)`` or the text ``"lo:hi"`` (as registry names write it:
    ``hermite:8(domain=-3:3)``) as a checked ``(lo, hi)`` of finite floats with ``lo < hi``."""
    if value is None:
        return None
    text = value
    if isinstance(value, str):
        value = value.split(":") if ":" in value else value.split(",")
    try:
        lo, hi = (float(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(f"domain must be None, a pair (low, high) or the text 'low:high', got {text!r}") from None
    if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
        raise ValueError(f"domain must be a finite interval with low < high, got {text!r}")
    return (lo, hi)
