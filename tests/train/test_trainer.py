"""The trainer's parameter groups: each family's learning-rate multiplier by default, the paper's
presets pinned to the paper's setting."""

import pytest
from torch import nn

import orthoact
from orthoact import declarations
from orthoact.registry import family_names
from orthoact.train import image, lm
from orthoact.train.config import presets
from orthoact.train.trainer import parameter_groups


def model():
    return nn.Sequential(nn.Linear(4, 8), orthoact.Hermite(3), nn.LayerNorm(8), orthoact.Tropical(5),
                         orthoact.Fourier(5), nn.Linear(8, 2))


def test_each_family_gets_its_own_multiplier_unless_one_is_given():
    net = model()
    groups = parameter_groups(net, weight_decay=0.1)
    mult_of = {id(p): g["lr_mult"] for g in groups for p in g["params"]}
    for m in (net[1], net[3], net[4]):
        assert all(mult_of[id(p)] == declarations.get(m.spec.name).lr_mult for p in m.parameters()), m.spec.name
    assert all(mult_of[id(p)] == 1.0 for p in [*net[0].parameters(), *net[2].parameters(), *net[5].parameters()])
    decay = next(g for g in groups if g["name"] == "decay")
    assert {id(p) for p in decay["params"]} == {id(net[0].weight), id(net[5].weight)} and decay["weight_decay"] == 0.1
    assert all(g["weight_decay"] == 0.0 for g in groups if g["name"] != "decay")
    # an explicit multiplier applies to every family
    given = parameter_groups(net, weight_decay=0.1, act_lr_mult=2.5)
    acts = [g for g in given if g["name"].startswith("activations")]
    assert len(acts) == 1 and acts[0]["lr_mult"] == 2.5
    assert {id(p) for p in acts[0]["params"]} == {id(p) for m in (net[1], net[3], net[4]) for p in m.parameters()}


def test_small_presets_use_the_family_defaults_and_paper_presets_the_paper_setting():
    for kind, module in (("lm", lm), ("image", image)):
        for name in presets(kind):
            cfg = module.resolve_config(name, ["act=hermite:3"])
            expected = 1.0 if name in ("owt-gpt2-124m", "imagenet-convnext-t") else None
            assert cfg["train"].act_lr_mult == expected, name
    assert lm.resolve_config("owt-gpt2-124m", ["train.act_lr_mult=none"])["train"].act_lr_mult is None


@pytest.mark.parametrize("name", family_names())
def test_family_multipliers_are_positive(name):
    assert declarations.get(name).lr_mult > 0
