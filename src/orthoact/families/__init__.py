"""The activation families, one file each: the declaration (:class:`orthoact.family.FamilySpec`), the
functional twin and the module class. Importing this package declares them; adding a family is one
more file here (its math in ``orthoact/basis``, its kernels in ``orthoact/ops/kernels``) and one line
below."""

from orthoact.families.hermite import Hermite, hermite
from orthoact.families.fourier import Fourier, fourier
from orthoact.families.tropical import Tropical, tropical
from orthoact.families.tropical_rational import TropicalRational, tropical_rational
from orthoact.families.rational import Rational, rational

__all__ = ["Hermite", "Fourier", "Tropical", "TropicalRational", "Rational", "hermite", "fourier", "tropical",
           "tropical_rational", "rational"]
