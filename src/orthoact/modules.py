"""``nn.Module`` classes of the activation families (declared in :mod:`orthoact.families`) and their
shared base :class:`~orthoact.activation.BasisActivation`."""

from orthoact.activation import BasisActivation
from orthoact.families import Fourier, Hermite, Rational, Tropical, TropicalRational

__all__ = ["BasisActivation", "Hermite", "Fourier", "Tropical", "TropicalRational", "Rational"]
