"""Doctests of the package's docstrings (``make test`` runs them): the names the examples use."""

import pytest


@pytest.fixture(autouse=True)
def _doctest_names(doctest_namespace):
    import torch
    from torch import nn

    import orthoact

    doctest_namespace.update(torch=torch, nn=nn, orthoact=orthoact, OF=orthoact.functional,
                             **{name: getattr(orthoact, name) for name in orthoact.__all__ if name[0].isupper()})
