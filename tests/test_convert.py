import json
import re

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import orthoact
from orthoact import BasisActivation


class FunctionalMLP(nn.Module):
    """Stores its activation as a plain function attribute, like HF's ``intermediate_act_fn``."""

    def __init__(self):
        super().__init__()
        self.up, self.down = nn.Linear(4, 16), nn.Linear(16, 4)
        self.act_fn = F.gelu

    def forward(self, x):
        return self.down(self.act_fn(self.up(x)))


def test_convert_module_and_function_attribute():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 4), nn.GELU(), FunctionalMLP())
    converted, report = orthoact.convert(model, "hermite", 6)
    assert isinstance(converted[1], orthoact.Hermite) and isinstance(converted[2].act_fn, orthoact.Hermite)
    assert isinstance(model[1], nn.GELU) and model[2].act_fn is F.gelu  # not in place by default
    assert [s.name for s in report.sites] == ["1", "2.act_fn"]
    assert "act_fn" in dict(converted.named_modules())["2"]._modules
    x = torch.randn(3, 4) * 0.5
    torch.testing.assert_close(converted(x), model(x), atol=0.05, rtol=0.05)


def test_convert_inplace_and_strict():
    model = nn.Sequential(nn.Linear(2, 2), nn.ReLU())
    message = "convert found no activation to replace in Sequential (looked for GELU, GELUActivation"
    with pytest.raises(ValueError, match=re.escape(message)):
        orthoact.convert(model)
    same, report = orthoact.convert(model, strict=False)
    assert report.sites == [] and isinstance(same[1], nn.ReLU)
    converted, _ = orthoact.convert(model, "tropical_rational", 4, targets=nn.ReLU, inplace=True)
    assert converted is model and isinstance(model[1], orthoact.TropicalRational)


def test_convert_report_when_nothing_matches_names_the_default_degree():
    _, report = orthoact.convert(nn.Sequential(nn.Linear(2, 2)), strict=False)
    assert report.label == "hermite-3" and "to hermite-3" in str(report)  # not "hermite-0"
    _, report = orthoact.convert(nn.Sequential(nn.Linear(2, 2)), "rational", strict=False)
    assert report.label == "rational-5/4"


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float64])
def test_replacements_take_the_site_dtype(dtype):
    """Regression: replacements were built on the CPU in float32 whatever the model."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 4), nn.GELU(), FunctionalMLP()).to(dtype)
    converted, _ = orthoact.convert(model, "tropical_rational", 4)
    for act in (converted[1], converted[2].act_fn):
        assert all(t.dtype == dtype for t in act.tensors())
    x = torch.randn(3, 4, dtype=dtype)
    assert converted(x).dtype == dtype
    # calibration sees what the sites receive; an explicit dtype wins
    calibrated, _ = orthoact.convert(model, "hermite", 3, calibration=[x])
    assert calibrated[1].coefficients.dtype == dtype
    forced, _ = orthoact.convert(model, "hermite", 3, dtype=torch.float32)
    assert forced[1].coefficients.dtype == torch.float32


def test_replacements_on_the_meta_device():
    model = nn.Sequential(nn.Linear(4, 8), nn.GELU()).to("meta")
    converted, _ = orthoact.convert(model, "hermite", 3)
    assert converted[1].coefficients.device.type == "meta"


class GatedMLP(nn.Module):
    """Llama's MLP: down(act(gate(x)) * up(x))."""

    def __init__(self):
        super().__init__()
        self.gate, self.up, self.down = nn.Linear(4, 16), nn.Linear(4, 16), nn.Linear(16, 4)
        self.act_fn = nn.SiLU()

    def forward(self, x):
        return self.down(self.act_fn(self.gate(x)) * self.up(x))


@pytest.mark.parametrize("targets", ["silu", "swish", nn.SiLU, ("SiLU",)])
def test_convert_any_activation_by_name_or_class(targets):
    torch.manual_seed(0)
    model = nn.Sequential(GatedMLP(), nn.ReLU(), nn.Tanh())
    converted, report = orthoact.convert(model, "rational", (4, 3), targets=targets)
    assert [s.name for s in report.sites] == ["0.act_fn"] and report.sites[0].original == "SiLU"
    assert isinstance(converted[1], nn.ReLU) and isinstance(converted[2], nn.Tanh)
    x = torch.randn(5, 4)
    torch.testing.assert_close(converted(x), model(x), atol=0.02, rtol=0.02)
    both, report = orthoact.convert(model, "tropical_rational", 5, targets=["relu", "tanh"])
    assert [s.original for s in report.sites] == ["ReLU", "Tanh"]


def test_save_and_load_a_converted_plain_module(tmp_path):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 4), nn.GELU(), FunctionalMLP())
    converted, _ = orthoact.convert(model, "rational", (5, 4), version="B", groups=2)
    with torch.no_grad():
        for p in converted.parameters():
            p.add_(0.01 * torch.randn_like(p))  # trained after conversion
    orthoact.save_converted(converted, tmp_path / "saved")
    assert json.loads((tmp_path / "saved" / "orthoact.json").read_text())["sites"]["2.act_fn"]["config"]["version"] == "B"
    fresh = nn.Sequential(nn.Linear(4, 4), nn.GELU(), FunctionalMLP())  # the original architecture, untrained
    loaded = orthoact.load_converted(fresh, tmp_path / "saved")
    assert loaded is fresh and isinstance(fresh[2].act_fn, orthoact.Rational) and fresh[2].act_fn.groups == 2
    x = torch.randn(6, 4)
    torch.testing.assert_close(loaded(x), converted(x), rtol=0, atol=0)


def test_an_interrupted_save_keeps_the_previous_one(tmp_path, monkeypatch):
    import safetensors.torch

    converted, _ = orthoact.convert(nn.Sequential(nn.Linear(4, 8), nn.GELU()), "hermite", 3)
    orthoact.save_converted(converted, tmp_path)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    assert sorted(before) == ["model.safetensors", "orthoact.json"]

    def crash(model, filename, *args, **kwargs):
        open(filename, "wb").write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(safetensors.torch, "save_model", crash)
    with torch.no_grad():
        converted[1].coefficients.add_(1.0)
    with pytest.raises(OSError, match="disk full"):
        orthoact.save_converted(converted, tmp_path)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before  # intact, no temporary left


def test_load_converted_refuses_a_mismatch_and_changes_nothing(tmp_path):
    converted, _ = orthoact.convert(nn.Sequential(nn.Linear(4, 8), nn.GELU(), nn.Linear(8, 2)), "hermite", 3)
    orthoact.save_converted(converted, tmp_path / "saved")
    other = nn.Sequential(nn.Linear(4, 8), nn.GELU())  # no layer 2
    before = {k: v.clone() for k, v in other.state_dict().items()}
    with pytest.raises(ValueError, match=re.escape("unexpected ['2.bias', '2.weight']); nothing was loaded")):
        orthoact.load_converted(other, tmp_path / "saved")
    assert isinstance(other[1], nn.GELU) and all(torch.equal(v, before[k]) for k, v in other.state_dict().items())
    with pytest.raises(ValueError, match="has an activation at '1', but this Sequential has no activation there"):
        orthoact.load_converted(nn.Sequential(nn.Linear(4, 8)), tmp_path / "saved")
    with pytest.raises(FileNotFoundError, match="holds no orthoact.json"):
        orthoact.load_converted(other, tmp_path)
    with pytest.raises(ValueError, match="has no orthoact activation"):
        orthoact.save_converted(nn.Linear(2, 2), tmp_path / "x")


def test_convert_calibration_errors():
    model = nn.Sequential(nn.Linear(2, 2), nn.GELU())
    with pytest.raises(ValueError, match="calibration is empty"):
        orthoact.convert(model, calibration=[])
    with pytest.raises(ValueError, match="degree must be a positive int, got 0"):
        orthoact.convert(model, degree=0)


transformers = pytest.importorskip("transformers", reason="transformers not installed (pip install transformers)")


def tiny_bert():
    config = transformers.BertConfig(
        vocab_size=120, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
        hidden_act="gelu", max_position_embeddings=64, initializer_range=0.2,
    )
    torch.manual_seed(0)
    return transformers.BertModel(config).eval()


def batches(n, seed):
    g = torch.Generator().manual_seed(seed)
    return [{"input_ids": torch.randint(0, 120, (4, 24), generator=g)} for _ in range(n)]


def test_convert_bert_with_calibration_and_distill():
    teacher = tiny_bert()
    student, report = orthoact.convert(teacher, "hermite", 4, calibration=batches(4, 0))
    acts = [m for m in student.modules() if isinstance(m, BasisActivation)]
    assert len(acts) == 2 and len(report.sites) == 2
    assert not any(type(m).__name__ == "GELUActivation" for m in student.modules())
    for site in report.sites:
        assert site.name.endswith("intermediate.intermediate_act_fn")
        assert site.original == "GELUActivation" and site.recorded > 0
        assert site.input_min < 0 < site.input_max
        assert 0 <= site.rms_error <= site.max_error < 1
    assert "converted 2 activation(s) to hermite-4" in str(report)
    held_out = batches(2, 1)

    def error():
        with torch.no_grad():
            return sum(F.mse_loss(student(**b).last_hidden_state, teacher(**b).last_hidden_state).item() for b in held_out)

    before = error()
    history = orthoact.distill(student, teacher, batches(4, 0), steps=40, lr=0.01, progress=False)
    assert len(history) == 40 and history[-1] < history[0]
    assert error() < before
    # only the activation parameters moved
    original = dict(teacher.named_parameters())
    for name, p in student.named_parameters():
        if "intermediate_act_fn" not in name:
            assert torch.equal(p, original[name]), name


def test_distill_bad_input():
    teacher = tiny_bert()
    with pytest.raises(ValueError, match="no orthoact activation parameters"):
        orthoact.distill(tiny_bert(), teacher, batches(1, 0), steps=1)
    with pytest.raises(ValueError, match="batches is empty"):
        orthoact.distill(teacher, teacher, [], steps=1)
    with pytest.raises(ValueError, match="params must be 'activations' or 'all'"):
        orthoact.distill(teacher, teacher, batches(1, 0), params="some")


def test_convert_gives_each_site_a_domain_and_saving_keeps_it(tmp_path):
    """Pretrained-like inputs far outside a polynomial's reach: the automatic domain keeps the model's
    outputs (far closer than a plain fit on the recorded inputs), the report states it, and a saved
    and reloaded model keeps it."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 32), nn.GELU(), nn.Linear(32, 4))
    with torch.no_grad():
        model[0].weight.mul_(4)
    calibration = [3 * torch.randn(256, 4) for _ in range(2)]
    auto, report = orthoact.convert(model, "hermite", 8, calibration=calibration)
    plain, _ = orthoact.convert(model, "hermite", 8, calibration=calibration, domain=None)
    site = report.sites[0]
    assert site.domain is not None and site.domain[0] == -site.domain[1] and auto[1].domain == site.domain
    assert site.input_min < site.domain[0] and 0 < site.outside < 1
    assert f"[{site.domain[0]:g}, {site.domain[1]:g}]" in str(report) and "outside" in str(report)
    x = 3 * torch.randn(512, 4)
    with torch.no_grad():
        reference = model(x)
        auto_error = (auto(x) - reference).abs().max().item()
        plain_error = (plain(x) - reference).abs().max().item()
    assert auto_error < 0.25 * plain_error and auto_error < 0.05 * reference.abs().max().item()
    orthoact.save_converted(auto, tmp_path / "saved")
    fresh = nn.Sequential(nn.Linear(4, 32), nn.GELU(), nn.Linear(32, 4))
    loaded = orthoact.load_converted(fresh, tmp_path / "saved")
    assert loaded[1].domain == site.domain
    fresh.load_state_dict(auto.state_dict())
    torch.testing.assert_close(loaded(x), auto(x), rtol=0, atol=0)
    # an explicit domain for every site; the tropical families take none
    _, fixed = orthoact.convert(model, "fourier", 5, calibration=calibration, domain=(-2, 2))
    assert fixed.sites[0].domain == (-2.0, 2.0)
    _, tropical = orthoact.convert(model, "tropical", 5, calibration=calibration)
    assert tropical.sites[0].domain is None and tropical.sites[0].outside == 0
    with pytest.raises(ValueError, match="domain is not available for tropical"):
        orthoact.convert(model, "tropical", 5, domain=(-2, 2))


def test_finetune_parameters_trains_only_the_activations_and_the_head():
    """The paper's fine-tuning recipe: convert, attach a head, freeze the rest, train on a task."""
    torch.manual_seed(0)
    backbone = nn.Sequential(nn.Linear(8, 32), nn.GELU(), nn.Linear(32, 32), nn.GELU())
    model, _ = orthoact.convert(backbone, "hermite", 3, clamp=True, domain=None)
    model.append(nn.Linear(32, 3))
    params = orthoact.finetune_parameters(model, head="4")
    acts = [m for m in model.modules() if isinstance(m, BasisActivation)]
    assert len(params) == 2 * 2 + 2 and all(m.clamp_limit.requires_grad for m in acts)
    assert not any(p.requires_grad for p in model[0].parameters()) and model[4].weight.requires_grad
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    x = torch.randn(256, 8)
    labels = (x[:, 0] > 0).long() + (x[:, 1] > 0.5).long()
    optimizer = torch.optim.Adam(params, lr=1e-2)
    losses = []
    for _ in range(60):
        loss = F.cross_entropy(model(x), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.8 * losses[0]
    for name, p in model.named_parameters():
        moved = not torch.equal(p, before[name])
        assert moved == (name.startswith(("1.", "3.", "4."))), name
    with pytest.raises(ValueError, match="has no orthoact activation; convert it first"):
        orthoact.finetune_parameters(backbone)
    with pytest.raises(ValueError, match="head 'classifier' is not a submodule of Sequential"):
        orthoact.finetune_parameters(model, head="classifier")
