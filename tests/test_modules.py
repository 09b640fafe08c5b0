import copy
import math
import re

import pytest
import torch
from torch import nn

import orthoact
import orthoact.functional as OF
from conftest import FAMILIES, VARIANTS, make, params_of
from orthoact import reference

DTYPE_TOL = {
    torch.float64: dict(rtol=1e-12, atol=1e-12),
    torch.float32: dict(rtol=1e-5, atol=1e-5),
    torch.bfloat16: dict(rtol=1.6e-2, atol=2e-2),
    torch.float16: dict(rtol=2e-3, atol=2e-3),
}


def test_available_and_create():
    names = orthoact.available()
    assert names[:5] == ["hermite", "fourier", "tropical", "tropical_rational", "rational"]
    assert "gelu" in names
    assert isinstance(orthoact.create("hermite"), orthoact.Hermite)
    m = orthoact.create("hermite:8", groups=2)
    assert (m.degree, m.groups) == (8, 2)
    assert orthoact.create("Tropical-Rational:4").degree == 4
    assert isinstance(orthoact.create("gelu"), nn.GELU)
    r = orthoact.create("rational:6/3", version="B")
    assert (r.degree, r.options) == ((6, 3), {"version": "B"}) and r.numerator.shape == (1, 7)


@pytest.mark.parametrize(
    "call, exc, message",
    [
        (lambda: orthoact.create("swish2"), ValueError, "unknown activation 'swish2'; available: hermite"),
        (lambda: orthoact.create("hermite:three"), ValueError, "degree after ':'"),
        (lambda: orthoact.create("gelu:3"), ValueError, "takes no degree"),
        (lambda: orthoact.create("hermite:3", degree=4), ValueError, "degree given twice"),
        (lambda: orthoact.create("rational:5"), ValueError, "'rational:m/n'"),
        (lambda: orthoact.Rational(5, 0), ValueError, "denominator must be a positive int, got 0"),
        (lambda: orthoact.Rational(5, 4, version="C"), ValueError, "version must be one of 'A', 'B'; got 'C'"),
        (lambda: orthoact.Rational(5, 4, init="paper"), ValueError, "init must be one of 'identity', 'gelu'"),
        (lambda: orthoact.Hermite(0), ValueError, "degree must be a positive int, got 0"),
        (lambda: orthoact.Hermite(2.5), ValueError, "degree must be a positive int, got 2.5"),
        (lambda: orthoact.Fourier(True), ValueError, "degree must be a positive int, got True"),
        (lambda: orthoact.Tropical(3, groups=0), ValueError, "groups must be a positive int, got 0"),
        (lambda: orthoact.Hermite(3, init="xavier"), ValueError, "init must be one of 'paper', 'unit', 'gelu'"),
        (lambda: orthoact.Hermite(3, channel_dim=1.0), ValueError, "channel_dim must be an int, got 1.0"),
        (lambda: orthoact.Hermite(3, backend="cuda"), ValueError, "backend must be one of"),
        (lambda: orthoact.Fourier(3, learn_frequencies="yes"), TypeError, "learn_frequencies must be a bool"),
        (lambda: orthoact.Hermite(3, dtype=torch.int32), TypeError, "dtype must be a floating-point dtype"),
    ],
)
def test_bad_construction(call, exc, message):
    with pytest.raises(exc, match=re.escape(message)):
        call()


@pytest.mark.parametrize("family", FAMILIES)
def test_bad_inputs(family):
    m = orthoact.create(family, groups=3, channel_dim=1)
    message = "input must be a floating-point tensor (float16, bfloat16, float32 or float64), got torch.int64"
    with pytest.raises(TypeError, match=re.escape(message)):
        m(torch.ones(2, 3, dtype=torch.int64))
    with pytest.raises(ValueError, match=re.escape("groups=3 must divide the size 4 of channel_dim=1 of the input with shape (2, 4)")):
        m(torch.ones(2, 4))
    with pytest.raises(ValueError, match=re.escape("channel_dim=1 is out of range for an input with 1 dimensions (allowed: -1..0)")):
        m(torch.ones(6))
    with pytest.raises(TypeError, match="input must be a torch.Tensor, got list"):
        m([1.0, 2.0])


def test_bad_functional_parameters():
    x = torch.randn(4, 6)
    with pytest.raises(ValueError, match=re.escape("all parameters must have the same number of groups (rows)")):
        OF.fourier(x, torch.ones(2, 1), torch.ones(1, 3), torch.ones(1, 3), torch.ones(1, 3))
    with pytest.raises(ValueError, match=re.escape("phases must have shape (groups, 3) for a fourier activation of degree 3 "
                                                   "(given by the other parameters), got (1, 2)")):
        OF.fourier(x, torch.ones(1, 1), torch.ones(1, 3), torch.ones(1, 3), torch.ones(1, 2))
    with pytest.raises(ValueError, match=re.escape("coefficients must have shape (groups, n_params) or (n_params,), got (1, 1, 3)")):
        OF.hermite(x, torch.ones(1, 1, 3))
    with pytest.raises(TypeError, match="coefficients must be a floating-point tensor, got torch.int64"):
        OF.hermite(x, torch.ones(3, dtype=torch.int64))
    with pytest.raises(ValueError, match=re.escape("offsets must have at least 2 columns (degree >= 1), got shape (1, 1)")):
        OF.tropical(x, torch.ones(1, 1))
    with pytest.raises(ValueError, match=re.escape("offsets_den must have shape (groups, 3) for a tropical_rational")):
        OF.tropical_rational(x, torch.ones(1, 3), torch.ones(1, 3), torch.ones(1, 3), torch.ones(1, 4))
    with pytest.raises(ValueError, match=re.escape("bias must have shape (groups, 1) for a fourier activation")):
        OF.fourier(x, torch.ones(1, 2), torch.ones(1, 3), torch.ones(1, 3), torch.ones(1, 3))
    with pytest.raises(ValueError, match=re.escape("version must be one of 'A', 'B'; got 'C'")):
        OF.rational(x, torch.ones(1, 3), torch.ones(1, 2), version="C")
    with pytest.raises(TypeError, match=re.escape("hermite takes 1 parameter tensors (coefficients), got 2")):
        OF.apply("hermite", x, torch.ones(3), torch.ones(3))
    with pytest.raises(ValueError, match=re.escape("backend must be one of 'auto', 'reference', 'fused', 'triton'; got 'gpu'")):
        OF.hermite(x, torch.ones(3), backend="gpu")


def test_env_var_backend(monkeypatch):
    monkeypatch.setenv("ORTHOACT_BACKEND", "nonsense")
    with pytest.raises(ValueError, match="environment variable ORTHOACT_BACKEND must be one of"):
        orthoact.Hermite(3)(torch.randn(3))
    monkeypatch.setenv("ORTHOACT_BACKEND", "reference")
    torch.testing.assert_close(orthoact.Hermite(3)(torch.ones(2)), reference.hermite(torch.ones(2), orthoact.Hermite(3).coefficients))


@pytest.mark.parametrize("family", ["hermite", "fourier", "tropical", "tropical_rational"])
def test_repr(family):
    m = orthoact.create(family, degree=4, groups=2, channel_dim=1)
    name = type(m).__name__
    assert repr(m) == f"{name}(degree=4, groups=2, channel_dim=1)"
    assert repr(orthoact.Hermite(3, init="unit")) == "Hermite(degree=3, groups=1, init='unit')"
    assert repr(orthoact.Fourier(5, learn_frequencies=False)) == "Fourier(degree=5, groups=1, learn_frequencies=False)"
    assert repr(orthoact.Rational(4, 3, version="B", init="identity", channel_dim=1)) == (
        "Rational(numerator=4, denominator=3, groups=1, channel_dim=1, init='identity', version='B')")


def test_parameter_names_and_shapes():
    expected = {
        "hermite": {"coefficients": (3, 5)},
        "fourier": {"bias": (3, 1), "coefficients": (3, 4), "frequencies": (3, 4), "phases": (3, 4)},
        "tropical": {"offsets": (3, 5)},
        "tropical_rational": {n: (3, 5) for n in ("slopes_num", "offsets_num", "slopes_den", "offsets_den")},
        "rational": {"numerator": (3, 5), "denominator": (3, 3)},
    }
    for family, shapes in expected.items():
        m = orthoact.create(f"{family}:4/3" if family == "rational" else f"{family}:4", groups=3)
        assert {n: tuple(p.shape) for n, p in m.named_parameters()} == shapes


def test_fourier_fixed_frequencies_are_a_buffer():
    m = orthoact.Fourier(3, learn_frequencies=False)
    assert "frequencies" not in dict(m.named_parameters())
    assert torch.equal(m.frequencies, torch.tensor([[1.0, 2.0, 3.0]]))
    assert "frequencies" in m.state_dict()


def test_paper_init_values():
    e = math.exp(-0.5)
    torch.testing.assert_close(
        orthoact.Hermite(3).coefficients, torch.tensor([[e * math.sqrt(1 - 1 / 6), e, e, e]])
    )
    f = orthoact.Fourier(2)
    s = 2.2795853023360673 ** -0.5
    torch.testing.assert_close(f.bias, torch.tensor([[s * math.sqrt(1 - 1 / 4)]]))
    torch.testing.assert_close(f.phases, torch.full((1, 2), math.pi / 4))
    assert torch.equal(orthoact.Tropical(4).offsets, torch.ones(1, 5))



@pytest.mark.parametrize("version", ["A", "B"])
@pytest.mark.parametrize("backend", ["reference", "fused"])
def test_rational_identity_init_is_x_and_its_zero_denominator_gets_no_gradient(version, backend):
    """KAT's identity start: F(x) = x exactly; |.| has zero slope at 0, so only the numerator learns
    (documented in Rational's docstring), as in rational-activations."""
    act = orthoact.Rational(5, 4, version=version, init="identity", backend=backend)
    x = torch.randn(4096)
    y = act(x)
    assert torch.equal(y, x)
    y.square().sum().backward()
    assert torch.count_nonzero(act.denominator.grad) == 0
    assert torch.count_nonzero(act.numerator.grad) > 0

@pytest.mark.parametrize("variant", VARIANTS)
def test_state_dict_round_trip(variant, tmp_path):
    a = make(variant, groups=2, dtype=torch.float32, seed=1)
    b = make(variant, groups=2, dtype=torch.float32, seed=2)
    path = tmp_path / "act.pt"
    torch.save(a.state_dict(), path)
    b.load_state_dict(torch.load(path, weights_only=True))
    x = torch.randn(5, 4)
    torch.testing.assert_close(a(x), b(x), rtol=0, atol=0)
    a.reset_parameters()
    if a.family != "tropical_rational":  # its init is random
        fresh = type(a).from_config(a.config())  # the same structure and init, placeholder values
        assert fresh.init == a.init and fresh.config() == a.config()
        fresh.reset_parameters()
        torch.testing.assert_close(a.state_dict(), fresh.state_dict())


@pytest.mark.parametrize("variant", VARIANTS)
def test_groups_and_channel_dim_equal_per_channel_loop(variant):
    m = make(variant, groups=3, channel_dim=1, seed=3)
    x = torch.randn(2, 6, 5, dtype=torch.float64)
    y = m(x)
    params = params_of(m)
    for c in range(6):
        g = c // 2
        single = [p[g : g + 1] for p in params.values()]
        expected = reference.evaluate(m.spec, x[:, c], single, **m.options)
        torch.testing.assert_close(y[:, c], expected)
    # channel_dim=-1 on a transposed input gives the same result
    m.channel_dim = -1
    torch.testing.assert_close(m(x.transpose(1, 2)), y.transpose(1, 2))


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16, torch.float16])
def test_dtypes(variant, dtype):
    m = make(variant, groups=2, dtype=torch.float32, seed=4, backend=None)
    x = torch.randn(7, 4, dtype=torch.float64).clamp(-3, 3)
    xd = x.to(dtype).requires_grad_()
    y = m(xd)
    assert y.dtype == dtype and y.shape == x.shape
    # Compare against the float64 result on the rounded input: only the output rounding differs.
    expected = copy.deepcopy(m).double()(xd.detach().double())
    torch.testing.assert_close(y.double(), expected, **DTYPE_TOL[dtype])
    y.float().sum().backward()
    assert xd.grad.dtype == dtype
    for p in m.parameters():
        assert p.grad is not None and p.grad.dtype == torch.float32 and torch.isfinite(p.grad).all()


@pytest.mark.parametrize("family", FAMILIES)
def test_autocast(family):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), orthoact.create(family), nn.Linear(16, 4))
    x = torch.randn(5, 8)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = model(x)
    assert y.dtype == torch.bfloat16
    y.float().sum().backward()
    act = model[1]
    assert all(p.grad is not None and p.grad.dtype == torch.float32 for p in act.parameters())
    torch.testing.assert_close(y.float(), model(x), rtol=0.1, atol=0.1)


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("shape", [(), (1,), (3, 0), (2, 3, 4, 5)])
def test_any_shape(variant, shape):
    m = make(variant, dtype=torch.float32, backend=None)
    x = torch.randn(shape)
    y = m(x)
    assert y.shape == x.shape
    torch.testing.assert_close(y, reference.evaluate(m.spec, x, m.tensors(), **m.options))


def test_tropical_inf_is_inf_and_minus_inf_is_constant():
    m = orthoact.Tropical(3)
    out = m(torch.tensor([math.inf, -math.inf]))
    assert out[0].item() == math.inf
    assert out[1].item() == pytest.approx(math.sqrt(2) / 3)


def test_tropical_gradient_goes_to_first_argmax():
    # At x = 0 with equal offsets every piece ties: the first (slope 0) takes the gradient.
    offsets = torch.ones(1, 4, requires_grad=True)
    x = torch.zeros(1, requires_grad=True)
    OF.tropical(x, offsets, backend="reference").sum().backward()
    assert x.grad.item() == 0.0
    torch.testing.assert_close(offsets.grad, torch.tensor([[math.sqrt(2) / 3, 0.0, 0.0, 0.0]]))


def test_modules_train():
    """A tiny regression with each family reduces its loss (the parameters really learn)."""
    torch.manual_seed(0)
    x = torch.linspace(-2, 2, 256).unsqueeze(1)
    target = torch.sin(2 * x) + 0.5 * x
    for family in orthoact.family_names():
        act = orthoact.create(family)
        opt = torch.optim.Adam(act.parameters(), lr=0.05)
        losses = []
        for _ in range(100):
            loss = (act(x) - target).square().mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
        assert losses[-1] < 0.5 * losses[0], (family, losses[0], losses[-1])


def test_documented_submodules_are_attributes_of_the_package():
    """Regression (0.1 had them): ``import orthoact`` then ``orthoact.modules.BasisActivation`` etc."""
    import orthoact as oa

    assert oa.modules.BasisActivation is oa.BasisActivation
    assert oa.functional.hermite is not None and oa.conversion.convert is oa.convert
    assert oa.declarations.get("hermite").name == "hermite" and oa.inputs.InputMap().identity
    assert callable(oa.analysis.plots.plot_panels) and callable(oa.integrations.activate)  # imported on first use
