"""See what the activations do: plots, gain propagation through depth, networks as polynomials,
comparisons of training runs.

Plotting needs matplotlib (``pip install 'orthoact[plot]'``); polynomial extraction needs sympy
(``pip install 'orthoact[analysis]'``). Both are imported only when a function needs them.
"""

from orthoact.analysis.gains import GainTrace, gaussian_gains, make_activation, plot_trace, propagate
from orthoact.analysis.plots import activation_modules, plot_activations, plot_fit, plot_panels, record_inputs
from orthoact.analysis.polynomial import count_linear_pieces, polynomial_degree, to_polynomial
from orthoact.analysis.runs import plot_losses, plot_runs, read_run, summary_table

__all__ = [
    "activation_modules",
    "plot_activations",
    "plot_fit",
    "plot_panels",
    "record_inputs",
    "to_polynomial",
    "polynomial_degree",
    "count_linear_pieces",
    "propagate",
    "gaussian_gains",
    "make_activation",
    "plot_trace",
    "GainTrace",
    "read_run",
    "plot_runs",
    "plot_losses",
    "summary_table",
]
