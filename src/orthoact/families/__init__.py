"""The shipped activation families, one module each: its declaration
(:class:`orthoact.declarations.FamilySpec`), its functional twin and its ``nn.Module`` class.

Importing a module declares its family. A family is its own file here (its math in
``orthoact/basis``, its kernels, if it has any, in ``orthoact/ops/kernels``) plus one import line
below that exports its two public names; the registry, the fast paths, fitting, gains, the command
line, the tests and the benchmarks find it through its declaration. A family declared anywhere else
(``orthoact.declarations.declare``) works the same way without kernels, on the reference
implementation.
"""

# The import order is the declaration order, which every listing follows (kept as written: isort off).
# isort: off
from orthoact.families.hermite import Hermite, hermite
from orthoact.families.fourier import Fourier, fourier
from orthoact.families.tropical import Tropical, tropical
from orthoact.families.tropical_rational import TropicalRational, tropical_rational
from orthoact.families.rational import Rational, rational
# isort: on

__all__ = ["Hermite", "Fourier", "Tropical", "TropicalRational", "Rational",
           "hermite", "fourier", "tropical", "tropical_rational", "rational"]
