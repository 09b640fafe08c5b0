"""orthoact: learnable activation functions from function bases.

Hermite polynomials, Fourier series, tropical polynomials and tropical rational functions, after
Khalfaoui-Hassani & Kesselheim, "Polynomial, trigonometric, and tropical activations"
(arXiv 2502.01247).
"""

from orthoact import functional, ops
from orthoact.compat import from_torchortho, torchortho_state_dict
from orthoact.convert import ConversionReport, convert, distill
from orthoact.fit import FitReport, fit
from orthoact.modules import BasisActivation, Fourier, Hermite, Tropical, TropicalRational
from orthoact.registry import FAMILIES, available, create, register

__version__ = "0.1.0"

__all__ = [
    "Hermite",
    "Fourier",
    "Tropical",
    "TropicalRational",
    "BasisActivation",
    "create",
    "available",
    "register",
    "FAMILIES",
    "fit",
    "convert",
    "distill",
    "ConversionReport",
    "FitReport",
    "functional",
    "ops",
    "from_torchortho",
    "torchortho_state_dict",
    "__version__",
]
