"""Pure mathematics of each basis family: values, derivatives, initial values and Gaussian gains.

Nothing here is an ``nn.Module`` or an ``autograd.Function``: every function takes tensors (or
plain numbers) and returns tensors, so the same formulas serve the eager reference, the fast
paths' tests and the analysis tools.
"""

from orthoact.basis.fourier import (
    I0_2,
    fourier_gains,
    fourier_paper_init,
    fourier_series,
    fourier_series_derivative,
)
from orthoact.basis.hermite import (
    hermite_basis,
    hermite_gains,
    hermite_paper_coefficients,
    hermite_series,
    hermite_series_derivative,
    hermite_unit_coefficients,
)
from orthoact.basis.tropical import (
    gaussian_interval_moments,
    max_affine,
    tropical_gains,
    tropical_rational_gains,
    tropical_scale,
)

__all__ = [
    "hermite_basis",
    "hermite_series",
    "hermite_series_derivative",
    "hermite_gains",
    "hermite_paper_coefficients",
    "hermite_unit_coefficients",
    "I0_2",
    "fourier_series",
    "fourier_series_derivative",
    "fourier_gains",
    "fourier_paper_init",
    "tropical_scale",
    "max_affine",
    "tropical_gains",
    "tropical_rational_gains",
    "gaussian_interval_moments",
]
