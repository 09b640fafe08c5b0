"""Errors orthoact raises on purpose, so the command line can tell them from bugs."""


class MissingDependency(ImportError):
    """An optional dependency is not installed; the message names what to install."""
