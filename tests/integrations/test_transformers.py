"""Hugging Face models in and out: orthoact activation names in configs, converted models that save
and reload (checked in a fresh process), SiLU (gated MLP) models. Small random-weight models built
from configs: nothing is downloaded."""

import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch
import torch.nn.functional as F

import orthoact

transformers = pytest.importorskip("transformers", reason="transformers not installed (pip install 'orthoact[hf]')")
import orthoact.integrations.transformers  # noqa: E402,F401  (registers the names)

VOCAB = 97


def tiny(kind: str, act: str):
    common = dict(vocab_size=VOCAB)
    if kind == "gpt2":
        config = transformers.GPT2Config(n_positions=32, n_embd=32, n_layer=2, n_head=2, activation_function=act,
                                         resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, bos_token_id=0, eos_token_id=0,
                                         **common)
        return transformers.GPT2LMHeadModel(config)
    if kind == "bert":
        config = transformers.BertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                                         hidden_act=act, max_position_embeddings=64, hidden_dropout_prob=0.0,
                                         attention_probs_dropout_prob=0.0, **common)
        return transformers.BertForMaskedLM(config)
    config = transformers.LlamaConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                                      num_key_value_heads=2, hidden_act=act, max_position_embeddings=64,
                                      bos_token_id=0, eos_token_id=0, **common)
    return transformers.LlamaForCausalLM(config)


def tokens(n=4, seed=0):
    return torch.randint(0, VOCAB, (n, 16), generator=torch.Generator().manual_seed(seed))


def logits(model, ids):
    with torch.no_grad():
        return model(input_ids=ids).logits


# A new process may pick other CPU kernels (thread count, instruction set dispatch) for the same
# matmuls, so logits computed there agree to float32 rounding, not bit for bit.
CROSS_PROCESS_ATOL = 1e-5


def assert_same_logits(reloaded, expected):
    torch.testing.assert_close(reloaded, expected, rtol=1e-5, atol=CROSS_PROCESS_ATOL)


def fresh_process_logits(folder, model_class: str, ids, import_integration=True):
    """Load ``folder`` with ``from_pretrained`` in a new Python process and return its logits."""
    code = textwrap.dedent(f"""
        import json, sys, torch, transformers
        {"import orthoact.integrations.transformers" if import_integration else ""}
        model = transformers.{model_class}.from_pretrained({str(folder)!r}).eval()
        ids = torch.tensor(json.loads(sys.stdin.read()))
        with torch.no_grad():
            print(json.dumps(model(input_ids=ids).logits.tolist()))
    """)
    result = subprocess.run([sys.executable, "-c", code], input=json.dumps(ids.tolist()), capture_output=True, text=True,
                            env=dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_VERBOSITY="error"), timeout=300)
    if result.returncode != 0:
        raise RuntimeError(result.stderr[-3000:])
    return torch.tensor(json.loads(result.stdout.strip().splitlines()[-1]))


@pytest.mark.parametrize("kind, model_class", [("gpt2", "GPT2LMHeadModel"), ("bert", "BertForMaskedLM"),
                                               ("llama", "LlamaForCausalLM")])
@pytest.mark.parametrize("act", ["orthoact:hermite:3", "orthoact:tropical_rational:5", "orthoact:rational:5/4"])
def test_orthoact_names_in_configs_train_and_round_trip(kind, model_class, act, tmp_path):
    torch.manual_seed(0)
    model = tiny(kind, act)
    acts = [m for m in model.modules() if isinstance(m, orthoact.BasisActivation)]
    assert len(acts) >= 2 and len({id(m) for m in acts}) == len(acts)  # one module (own parameters) per layer
    assert acts[0].label() == act.split(":", 1)[1].replace(":", "-")
    # a few training steps: the loss falls
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    ids = tokens(8)
    losses = []
    for _ in range(15):
        out = model(input_ids=ids, labels=ids)
        opt.zero_grad()
        out.loss.backward()
        opt.step()
        losses.append(out.loss.item())
    assert losses[-1] < 0.9 * losses[0], losses
    assert all(m.tensors()[0].grad is not None for m in acts)
    model.eval()
    model.save_pretrained(tmp_path)
    assert_same_logits(fresh_process_logits(tmp_path, model_class, tokens(2, 1)), logits(model, tokens(2, 1)))


def test_unknown_orthoact_name_fails_clearly():
    with pytest.raises(ValueError, match="unknown activation 'legendre:3'"):
        tiny("gpt2", "orthoact:legendre:3")


@pytest.fixture(scope="module")
def converted_llama():
    torch.manual_seed(0)
    teacher = tiny("llama", "silu").eval()
    calibration = [{"input_ids": tokens(4, s)} for s in range(3)]
    student, report = orthoact.convert(teacher, "tropical_rational", 5, targets="silu", calibration=calibration)
    return teacher, student, report, calibration


def test_convert_a_gated_silu_model(converted_llama):
    teacher, student, report, calibration = converted_llama
    names = [s.name for s in report.sites]
    assert names == [f"model.layers.{i}.mlp.act_fn" for i in range(2)]
    assert all(s.original == "SiLUActivation" and s.recorded > 0 for s in report.sites)
    assert not any(type(m).__name__ == "SiLUActivation" for m in student.modules())
    assert student.config.hidden_act == "orthoact:tropical_rational:5" and teacher.config.hidden_act == "silu"
    assert set(student.config.orthoact["sites"]) == set(names)

    def error():
        return sum(F.mse_loss(logits(student, b["input_ids"]), logits(teacher, b["input_ids"])).item()
                   for b in calibration)

    before = error()
    orthoact.distill(student, teacher, calibration, steps=30, lr=0.01, output="logits", progress=False)
    assert error() < before
    original = dict(teacher.named_parameters())
    for name, p in student.named_parameters():
        if ".act_fn." not in name:
            assert torch.equal(p, original[name]), name  # every other weight unchanged


def test_converted_model_saves_and_reloads_in_a_fresh_process(converted_llama, tmp_path):
    _, student, _, _ = converted_llama
    student.save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["hidden_act"] == "orthoact:tropical_rational:5" and "model.layers.1.mlp.act_fn" in config["orthoact"]["sites"]
    ids = tokens(2, 5)
    assert_same_logits(fresh_process_logits(tmp_path, "LlamaForCausalLM", ids), logits(student, ids))
    # without the integration the config's activation is unknown to transformers: a loud failure,
    # never the original model in silence
    with pytest.raises(RuntimeError, match="orthoact:tropical_rational:5"):
        fresh_process_logits(tmp_path, "LlamaForCausalLM", ids, import_integration=False)


def test_partly_converted_model_records_its_sites(tmp_path):
    """Only the first layer's activation converted: the config keeps its activation name for the
    other one, and the reload rebuilds exactly the converted site."""
    torch.manual_seed(0)
    model = tiny("gpt2", "gelu_new").eval()
    first = model.transformer.h[0].mlp
    _, report = orthoact.convert(first, "hermite", 4, targets="gelu", inplace=True)
    orthoact.integrations.transformers.record_conversion(model, "gelu", "hermite", 4)
    assert model.config.activation_function == "gelu_new"  # layer 1 is still GELU
    model.save_pretrained(tmp_path)
    ids = tokens(2, 3)
    reloaded = fresh_process_logits(tmp_path, "GPT2LMHeadModel", ids)
    assert_same_logits(reloaded, logits(model, ids))
    # the tolerance tells the converted model from the original one by orders of magnitude
    torch.manual_seed(0)
    original = tiny("gpt2", "gelu_new").eval()
    assert (reloaded - logits(original, ids)).abs().max() > 100 * CROSS_PROCESS_ATOL


def test_recorded_sites_that_do_not_fit_the_model_are_refused(converted_llama, tmp_path):
    _, student, _, _ = converted_llama
    student.save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    config["orthoact"]["sites"]["model.layers.7.mlp.act_fn"] = config["orthoact"]["sites"]["model.layers.0.mlp.act_fn"]
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="has an activation at '(model.)?layers.7.mlp.act_fn'"):
        transformers.LlamaForCausalLM.from_pretrained(tmp_path)


def test_converted_head_model_reloads_as_itself_and_as_its_base(tmp_path):
    """BertForMaskedLM converted (sites in the encoder and in the head) reloads as BertForMaskedLM, as
    BertModel (the encoder's sites) and a converted GPT2 head model as another head."""
    torch.manual_seed(0)
    bert = tiny("bert", "gelu").eval()
    converted, report = orthoact.convert(bert, "hermite", 4)
    assert any(s.name.startswith("cls.") for s in report.sites)  # the head's transform activation too
    converted.save_pretrained(tmp_path / "bert")
    again = transformers.BertForMaskedLM.from_pretrained(tmp_path / "bert").eval()
    ids = tokens(2, 4)
    torch.testing.assert_close(logits(again, ids), logits(converted, ids), rtol=0, atol=0)
    base = transformers.BertModel.from_pretrained(tmp_path / "bert").eval()
    with torch.no_grad():
        torch.testing.assert_close(base(input_ids=ids).last_hidden_state, converted.bert(input_ids=ids).last_hidden_state)
    gpt2, _ = orthoact.convert(tiny("gpt2", "gelu_new").eval(), "tropical", 5)
    gpt2.save_pretrained(tmp_path / "gpt2")
    classifier = transformers.GPT2ForSequenceClassification.from_pretrained(tmp_path / "gpt2", num_labels=3)
    assert all(isinstance(block.mlp.act, orthoact.Tropical) for block in classifier.transformer.h)
    torch.testing.assert_close(classifier.transformer.h[1].mlp.act.offsets, gpt2.transformer.h[1].mlp.act.offsets)
    base_gpt2, _ = orthoact.convert(transformers.GPT2Model(tiny("gpt2", "gelu_new").config).eval(), "hermite", 3)
    base_gpt2.save_pretrained(tmp_path / "gpt2-base")
    head = transformers.GPT2LMHeadModel.from_pretrained(tmp_path / "gpt2-base")
    assert all(isinstance(block.mlp.act, orthoact.Hermite) for block in head.transformer.h)


def test_a_converted_domain_survives_save_pretrained(tmp_path):
    torch.manual_seed(0)
    model = tiny("gpt2", "gelu_new").eval()
    calibration = [{"input_ids": tokens(4, s)} for s in range(2)]
    student, report = orthoact.convert(model, "hermite", 6, targets="gelu", calibration=calibration)
    assert all(site.domain is not None for site in report.sites)
    student.save_pretrained(tmp_path)
    sites = json.loads((tmp_path / "config.json").read_text())["orthoact"]["sites"]
    assert sorted(tuple(s["config"]["domain"]) for s in sites.values()) == sorted(s.domain for s in report.sites)
    ids = tokens(2, 3)
    assert_same_logits(fresh_process_logits(tmp_path, "GPT2LMHeadModel", ids), logits(student, ids))
