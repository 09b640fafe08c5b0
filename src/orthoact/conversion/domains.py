"""Choosing, per activation site, where a converted activation follows its formula; outside it
continues linearly (see :mod:`orthoact.inputs`).

Pretrained models feed their activations values far outside the range a polynomial or a Fourier
series can follow (all-MiniLM-L6-v2's MLP inputs reach -17 and +25). The rule, for families that
take a domain (Hermite, Fourier, rational):

1. candidates are the symmetric intervals ``[-s, s]`` for s in :data:`CANDIDATES`;
2. on each, the family is fitted to the target uniformly (value and derivative, as :func:`orthoact.fit`
   with ``domain=`` and ``extend=True``): the fit's accuracy is what limits how wide it can be;
3. each candidate is scored on the site's own calibration inputs: the root-mean-square error of the
   extended activation against the target there, inside the domain (the fit's error) and outside
   it (the extension's error) alike;
4. the candidate with the lowest score is the site's domain.

Without calibration data the domain is the family's default fit domain. The fits depend only on the
target and the candidate, so sites with the same target share them.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from orthoact.declarations import FamilySpec

__all__ = ["DomainChooser", "CANDIDATES", "EVALUATED"]

#: half-widths of the candidate domains
CANDIDATES = (1.5, 2.0, 2.5, 3.0, 3.5, 4.0, 5.0, 6.0, 8.0)
#: calibration inputs a candidate is scored on (a fixed random subset beyond that)
EVALUATED = 50_000


class DomainChooser:
    """The domain rule of :func:`orthoact.convert` (``domain="auto"``) for one conversion."""

    def __init__(self, spec: FamilySpec, degree, fit_kwargs: dict) -> None:
        self.spec, self.degree, self.fit_kwargs = spec, degree, fit_kwargs
        self._fits: dict = {}
        self.scores: dict[str, dict[tuple[float, float], float]] = {}  # per site: candidate -> RMS error

    def default(self) -> tuple[float, float]:
        """The family's default fit domain, where a fit without calibration data lives."""
        from orthoact.fit import default_domain

        return default_domain(self.spec, self.degree)

    def choose(self, name: str, target, samples: Tensor | None) -> tuple[float, float] | None:
        """The domain of site ``name`` (``None`` for a family without one: it grows linearly already)."""
        if self.spec.derivative is None:
            return None
        if samples is None:
            return self.default()
        x = samples.detach().double().reshape(-1)
        x = x[torch.isfinite(x)]
        if x.numel() > EVALUATED:
            x = x[torch.randperm(x.numel(), generator=torch.Generator().manual_seed(0))[:EVALUATED]]
        scores = {}
        for s in CANDIDATES:
            module = self._fit(target, (-s, s))
            with torch.no_grad():
                error = module(x) - _values(target, x)
            score = error.square().mean().sqrt().item()
            scores[(-s, s)] = score if math.isfinite(score) else math.inf
        self.scores[name] = scores
        return min(scores, key=scores.get)

    def _fit(self, target, domain):
        from orthoact.fit import fit

        key = (_target_key(target), domain)
        if key not in self._fits:
            self._fits[key], _ = fit(target, self.spec.name, self.degree, domain=domain, extend=True,
                                     dtype=torch.float64, backend="reference", **self.fit_kwargs)
        return self._fits[key]


def _target_key(target):
    """Sites whose targets compute the same function share fits (one nn.GELU per layer)."""
    if isinstance(target, torch.nn.Module):
        return (type(target), repr(target))
    return target


def _values(target, x: Tensor) -> Tensor:
    with torch.no_grad():
        try:
            return target(x).double()
        except RuntimeError:  # a module with float32 weights
            return target(x.float()).double()
