"""See what the activations do: plots, gain propagation through depth, networks as polynomials.

Plotting needs matplotlib (``pip install 'orthoact[plot]'``); polynomial extraction needs sympy.
"""

from orthoact.analysis.plots import activation_modules, plot_activations, plot_fit

__all__ = ["activation_modules", "plot_activations", "plot_fit"]
