"""Deploying: every family (every variant and option) exports with ``torch.onnx.export(dynamo=True)``
on the default backend and runs in onnxruntime equal to PyTorch within float32 rounding."""

import importlib.util
import warnings

import pytest
import torch
from torch import nn

import orthoact
from conftest import VARIANTS, make

pytestmark = [pytest.mark.slow, pytest.mark.skipif(
    any(importlib.util.find_spec(m) is None for m in ("onnx", "onnxscript", "onnxruntime")),
    reason="needs onnx, onnxscript and onnxruntime (the test extra)")]


def exported_outputs(model: nn.Module, x: torch.Tensor, path) -> torch.Tensor:
    import onnxruntime

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(model, (x,), dynamo=True)
    program.save(str(path))
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return torch.from_numpy(session.run(None, {session.get_inputs()[0].name: x.numpy()})[0])


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_family_exports_to_onnx(variant, tmp_path):
    act = make(variant, dtype=torch.float32, groups=4, channel_dim=1, backend=None)  # random parameters, auto backend
    model = nn.Sequential(nn.Conv2d(3, 8, 1), act, nn.Conv2d(8, 2, 1)).eval()
    x = torch.randn(2, 3, 5, 5)
    with torch.no_grad():
        expected = model(x)
    torch.testing.assert_close(exported_outputs(model, x, tmp_path / "model.onnx"), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("variant,inputs", [("hermite", {"domain": (-2.0, 2.0), "clamp": True}),
                                            ("fourier", {"domain": (-3.0, 3.0)}), ("rational", {"domain": (-3.0, 3.0)}),
                                            ("tropical_rational", {"clamp": True})])
def test_input_maps_export_to_onnx(variant, inputs, tmp_path):
    act = make(variant, dtype=torch.float32, groups=4, channel_dim=1, backend=None, **inputs)
    model = nn.Sequential(nn.Conv2d(3, 8, 1), act, nn.Conv2d(8, 2, 1)).eval()
    x = 3 * torch.randn(2, 3, 5, 5)  # inputs on both sides of the domain
    with torch.no_grad():
        expected = model(x)
    torch.testing.assert_close(exported_outputs(model, x, tmp_path / "model.onnx"), expected, rtol=1e-5, atol=1e-5)


def test_a_converted_transformer_exports(tmp_path):
    transformers = pytest.importorskip("transformers")
    config = transformers.BertConfig(vocab_size=50, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                     intermediate_size=64)
    torch.manual_seed(0)
    bert = transformers.BertModel(config).eval()
    ids = torch.randint(0, 50, (2, 7))
    student, _ = orthoact.convert(bert, "rational", (5, 4), calibration=[{"input_ids": ids}])

    class Embedder(nn.Module):
        def __init__(self, model):
            super().__init__()
            self.model = model

        def forward(self, input_ids):
            return self.model(input_ids=input_ids).last_hidden_state.mean(1)

    wrapped = Embedder(student).eval()
    with torch.no_grad():
        expected = wrapped(ids)
    import onnxruntime

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(wrapped, (ids,), dynamo=True)
    program.save(str(tmp_path / "bert.onnx"))
    session = onnxruntime.InferenceSession(str(tmp_path / "bert.onnx"), providers=["CPUExecutionProvider"])
    got = torch.from_numpy(session.run(None, {session.get_inputs()[0].name: ids.numpy()})[0])
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)
