"""``nn.Module`` classes of the activation families (declared in :mod:`orthoact.families`) and their
shared base :class:`~orthoact.activation.BasisActivation`."""

from orthoact.activation import BasisActivation
from orthoact.families import MODULES as _MODULES

globals().update(_MODULES)  # Hermite, Fourier, Tropical, TropicalRational, Rational, ...
__all__ = ["BasisActivation", *_MODULES]
