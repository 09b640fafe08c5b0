"""orthoact: learnable activation functions from function bases.

Hermite polynomials, Fourier series, tropical polynomials and tropical rational functions, after
Khalfaoui-Hassani & Kesselheim, "Polynomial, trigonometric, and tropical activations"
(arXiv 2502.01247), plus the rational (Padé) activations of PAU and KAT.
"""

from orthoact import families as _families  # declares the families first
from orthoact import family as _family
from orthoact import functional, nn, ops
from orthoact.activation import BasisActivation
from orthoact.compat import from_rational_activations, from_torchortho, torchortho_state_dict
from orthoact.convert import ConversionReport, convert, distill, load_converted, save_converted
from orthoact.fit import FitReport, fit
from orthoact.registry import available, create, register

__version__ = "0.2.0"

#: Names of the declared families.
FAMILIES = _family.names()

globals().update(_families.MODULES)  # Hermite, Fourier, Tropical, TropicalRational, Rational, ...

__all__ = [
    *_families.MODULES,
    "BasisActivation",
    "create",
    "available",
    "register",
    "FAMILIES",
    "fit",
    "convert",
    "distill",
    "save_converted",
    "load_converted",
    "ConversionReport",
    "FitReport",
    "functional",
    "nn",
    "ops",
    "from_torchortho",
    "from_rational_activations",
    "torchortho_state_dict",
    "__version__",
]
