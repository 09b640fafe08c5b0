"""orthoact: learnable activation functions from function bases.

Hermite polynomials, Fourier series, tropical polynomials and tropical rational functions, after
Khalfaoui-Hassani & Kesselheim, "Polynomial, trigonometric, and tropical activations"
(arXiv 2502.01247), plus the rational (Padé) activations of PAU and KAT.
"""

from typing import TYPE_CHECKING

from orthoact import conversion, declarations, functional, modules, nn, ops, reference, registry
from orthoact.activation import BasisActivation
from orthoact.compat import from_rational_activations, from_torchortho, torchortho_state_dict
from orthoact.conversion import ConversionReport, convert, distill, finetune_parameters, load_converted, save_converted
from orthoact.families import Fourier, Hermite, Rational, Tropical, TropicalRational
from orthoact.fit import FitReport, fit
from orthoact.registry import available, create, family_names, register

__version__ = "0.2.0"

__all__ = [
    "Hermite",
    "Fourier",
    "Tropical",
    "TropicalRational",
    "Rational",
    "BasisActivation",
    "create",
    "available",
    "register",
    "family_names",
    "fit",
    "convert",
    "distill",
    "finetune_parameters",
    "save_converted",
    "load_converted",
    "ConversionReport",
    "FitReport",
    "conversion",
    "declarations",
    "functional",
    "modules",
    "nn",
    "ops",
    "reference",
    "registry",
    "from_torchortho",
    "from_rational_activations",
    "torchortho_state_dict",
    "__version__",
]

# Submodules with heavier imports, importable as attributes on first use (orthoact.analysis, ...);
# type checkers see them as the imports below.
_LAZY = ("analysis", "models", "train", "sweep", "integrations", "targets", "backends", "compat", "demo", "cli")

if TYPE_CHECKING:
    from orthoact import analysis as analysis
    from orthoact import backends as backends
    from orthoact import cli as cli
    from orthoact import compat as compat
    from orthoact import demo as demo
    from orthoact import integrations as integrations
    from orthoact import models as models
    from orthoact import sweep as sweep
    from orthoact import targets as targets
    from orthoact import train as train
else:
    def __getattr__(name: str):
        if name in _LAZY:
            import importlib

            return importlib.import_module(f"orthoact.{name}")
        raise AttributeError(f"module 'orthoact' has no attribute {name!r}")
