"""Integrations with other libraries, each a module of its own (``orthoact.integrations.transformers``).

An integration registers itself when imported (e.g. a post-conversion hook with
:func:`orthoact.conversion.add_conversion_hook`). :func:`activate` imports the integrations whose
library the process already uses, so a ``transformers`` model converted without importing our
integration first still records its conversion in its config.
"""

import importlib
import sys

#: library (as in sys.modules) -> orthoact's integration module for it
KNOWN = {"transformers": "orthoact.integrations.transformers"}


def activate() -> None:
    """Import the integration of every known library that is already imported in this process."""
    for library, module in KNOWN.items():
        if library in sys.modules and module not in sys.modules:
            importlib.import_module(module)
