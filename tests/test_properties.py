"""Property-based comparison of every fast path with the float64 reference (hypothesis).

Drawn: family variant, degree 0-30, groups, channel_dim, shape (0-d and empty included), input dtype
x parameter dtype, input map (clamp, domain, both), backend (fused; Triton under the interpreter where
there is no GPU). The fast
path gets the input and the parameters exactly as drawn (no cast); the reference runs in float64 on
the same values; output, input gradient and every parameter gradient are compared (see
``conftest.assert_matches_reference``). Degree 0 must be refused by every backend alike.
"""

import importlib.util
import re

import pytest
import torch
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from conftest import NO_GPU, VARIANTS, assert_matches_reference, degree_for, make, spec_of, split_variant
from orthoact import functional as OF

DTYPES = [torch.float32, torch.float64, torch.bfloat16, torch.float16]
PARAM_DTYPES = [torch.float32, torch.float64, torch.bfloat16]
BACKENDS = ["fused"] + (["triton"] if importlib.util.find_spec("triton") and NO_GPU else [])  # interpreted: CPU tensors
SETTINGS = dict(deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@st.composite
def layouts(draw):
    """(shape, groups, channel_dim): the channel dimension is divisible by groups."""
    groups = draw(st.sampled_from([1, 1, 2, 3]))
    ndim = draw(st.integers(0 if groups == 1 else 1, 4))
    shape = [draw(st.integers(1, 7)) for _ in range(ndim)]
    channel_dim = draw(st.integers(-ndim, ndim - 1)) if ndim else -1
    if ndim:
        shape[channel_dim] = groups * draw(st.integers(1, 4))
        if draw(st.integers(0, 9)) == 0:  # now and then an empty tensor
            others = [i for i in range(ndim) if i != channel_dim % ndim]
            if others:
                shape[draw(st.sampled_from(others))] = 0
    if ndim and draw(st.booleans()):  # a long run of one group too (the kernels' other layout)
        shape[-1] = shape[-1] * 97 if (channel_dim % ndim) != ndim - 1 else shape[-1]
    return tuple(shape), groups, channel_dim


@st.composite
def input_maps(draw, variant):
    """None, a clamp, a domain (families with a derivative) or both."""
    kind = draw(st.sampled_from(["none", "none", "clamp", "domain", "both"]))
    if kind in ("domain", "both") and spec_of(variant).derivative is None:
        kind = "clamp"
    domain = None
    if kind in ("domain", "both"):
        domain = (-draw(st.sampled_from([0.25, 0.7, 1.5, 3.0])), draw(st.sampled_from([0.3, 1.0, 2.0])))
    return {"domain": domain, "clamp": kind in ("clamp", "both")}


@settings(max_examples=200, **SETTINGS)
@given(
    variant=st.sampled_from(VARIANTS),
    degree=st.integers(0, 30),
    layout=layouts(),
    dtype=st.sampled_from(DTYPES),
    param_dtype=st.sampled_from(PARAM_DTYPES),
    backend=st.sampled_from(BACKENDS),
    scale=st.sampled_from([0.5, 1.0, 2.0]),
    seed=st.integers(0, 2**16),
    data=st.data(),
)
def test_fast_paths_match_the_float64_reference(variant, degree, layout, dtype, param_dtype, backend, scale, seed, data):
    shape, groups, channel_dim = layout
    name, options = split_variant(variant)
    event(f"backend {backend}")
    inputs = data.draw(input_maps(variant))
    torch.manual_seed(seed)
    x = (scale * torch.randn(shape, dtype=torch.float64)).to(dtype)
    grad = torch.randn(shape, dtype=torch.float64).to(dtype)
    if degree == 0:
        check_degree_zero(name, options, x, groups, channel_dim, backend)
        return
    module = make(variant, degree, groups=groups, dtype=param_dtype, seed=seed, **inputs)
    compute = torch.promote_types(torch.promote_types(dtype, param_dtype), torch.float32)
    if backend == "triton" and compute == torch.float64:
        with pytest.raises(RuntimeError, match="need float64 arithmetic; the Triton kernels compute in float32"):
            OF.apply(name, x, *module.tensors(), channel_dim=channel_dim, backend="triton", **options)
        return
    assert_matches_reference(module, x, grad, channel_dim, backend)


def check_degree_zero(name, options, x, groups, channel_dim, backend):
    """A degree-0 parameter matrix is refused at the boundary, with the same message on every backend."""
    spec = spec_of(name)
    degree = degree_for(name, 1)
    zero = tuple(0 for _ in degree) if isinstance(degree, tuple) else 0
    params = [torch.ones(groups, c) for c in spec.columns(zero).values()]
    messages = []
    for b in ("reference", backend):
        with pytest.raises(ValueError) as error:
            OF.apply(name, x, *params, channel_dim=channel_dim, backend=b, **options)
        messages.append(str(error.value))
    assert messages[0] == messages[1]
    assert re.search(r"(at least \d+ columns \(degree >= 1\)|must have shape \(groups, n_params\))", messages[0]), messages[0]
