"""The activation families, one module each: the declaration (:class:`orthoact.family.FamilySpec`),
the functional twin and the module class. Every module in this package is imported here, which
declares its family; adding a family is one more file here (its math in ``orthoact/basis``, its
kernels in ``orthoact/ops/kernels``, a code in :class:`orthoact.family.FamilyCode`) and no other line.

``MODULES`` and ``FUNCTIONS`` list each family's ``nn.Module`` class and functional twin, in
declaration order; :mod:`orthoact`, :mod:`orthoact.functional` and :mod:`orthoact.modules` export them.
"""

import importlib
import inspect
import pkgutil

_ORDER = ("hermite", "fourier", "tropical", "tropical_rational", "rational")  # the paper's four first

MODULES: dict[str, type] = {}
FUNCTIONS: dict[str, object] = {}
_names = [m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_")]
for _name in sorted(_names, key=lambda n: (_ORDER.index(n) if n in _ORDER else len(_ORDER), n)):
    _module = importlib.import_module(f"{__name__}.{_name}")
    for _public in _module.__all__:
        _value = getattr(_module, _public)
        (MODULES if inspect.isclass(_value) else FUNCTIONS)[_public] = _value
        globals()[_public] = _value

__all__ = [*MODULES, *FUNCTIONS, "MODULES", "FUNCTIONS"]
