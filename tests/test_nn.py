"""orthoact.nn.MLP: the recompute block against the plain one (values, every gradient, dtypes,
compile, double backward, state dicts) and the memory it saves."""

import re

import pytest
import torch
from torch import nn

import orthoact
from conftest import VARIANTS, make
from orthoact.models import GPT, GPTConfig
from orthoact.nn import MLP

ACTS = [*VARIANTS, "gelu", "silu"]


def block_pair(act, dtype=torch.float64, groups=1, seed=0):
    """The same MLP with and without recompute (shared parameter values)."""
    torch.manual_seed(seed)
    if act in ("gelu", "silu"):
        factory = act
    else:
        template = make(act, groups=groups, dtype=dtype, seed=seed, backend=None)

        def factory():
            fresh = type(template).from_config(template.config(), dtype=dtype)
            fresh.load_state_dict(template.state_dict())
            return fresh

    plain = MLP(12, 48, 10, act=factory, recompute=False, dtype=dtype)
    fused = MLP(12, 48, 10, act=factory, recompute=True, dtype=dtype)
    fused.load_state_dict(plain.state_dict())
    return plain, fused


def grads(block, x, grad):
    block.zero_grad()
    xx = x.clone().requires_grad_()
    y = block(xx)
    y.backward(grad)
    return [y.detach(), xx.grad] + [None if p.grad is None else p.grad.clone() for p in block.parameters()]


@pytest.mark.parametrize("act", ACTS)
@pytest.mark.parametrize("dtype, tol", [(torch.float64, 1e-10), (torch.float32, 1e-5)])
@pytest.mark.parametrize("groups", [1, 3])
def test_same_values_and_gradients_as_the_plain_block(act, dtype, tol, groups):
    """groups = 1: one long run, the value from the backward's own pass; 3: short runs (the rows layout)."""
    if act in ("gelu", "silu") and groups > 1:
        pytest.skip("no groups")
    plain, fused = block_pair(act, dtype, groups=groups)
    x = torch.randn(2, 5, 12, dtype=dtype)
    grad = torch.randn(2, 5, 10, dtype=dtype)
    for a, b in zip(grads(plain, x, grad), grads(fused, x, grad)):
        torch.testing.assert_close(b, a, rtol=tol, atol=tol)


@pytest.mark.parametrize("act", ["hermite", "tropical_rational", "rational", "gelu"])
def test_bfloat16_autocast(act):
    plain, fused = block_pair(act, torch.float32)
    x = torch.randn(4, 7, 12)
    grad = torch.randn(4, 7, 10)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        ref = grads(plain, x, grad)
        out = grads(fused, x, grad)
    assert out[0].dtype == torch.bfloat16 and all(p.dtype == torch.float32 for p in out[2:])
    for a, b in zip(ref, out):
        torch.testing.assert_close(b.float(), a.float(), rtol=2e-2, atol=2e-2)


def test_double_backward_raises_clearly_and_works_without_recompute():
    plain, fused = block_pair("hermite")
    x = torch.randn(3, 12, dtype=torch.float64, requires_grad=True)
    with pytest.raises(RuntimeError, match=re.escape("computes first derivatives only")):
        torch.autograd.grad(fused(x).sum(), x, create_graph=True)
    assert torch.autograd.gradgradcheck(lambda t: plain(t), (x,))


@pytest.mark.parametrize("act", ["hermite", "tropical", "gelu"])
def test_torch_compile_fullgraph(act):
    torch._dynamo.reset()
    plain, fused = block_pair(act, torch.float32)
    compiled = torch.compile(fused, fullgraph=True, backend="aot_eager")
    x = torch.randn(2, 5, 12)
    grad = torch.randn(2, 5, 10)
    for a, b in zip(grads(plain, x, grad), grads(compiled, x, grad)):
        torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-5)


def test_state_dicts_load_either_way():
    plain, fused = block_pair("tropical")
    assert list(plain.state_dict()) == list(fused.state_dict()) == ["fc1.weight", "fc1.bias", "act.offsets", "fc2.weight", "fc2.bias"]
    old = GPT(GPTConfig(vocab_size=11, block_size=8, n_layer=2, n_head=2, n_embd=16, activation="hermite:3", mlp_recompute=False))
    new = GPT(GPTConfig(vocab_size=11, block_size=8, n_layer=2, n_head=2, n_embd=16, activation="hermite:3"))
    new.load_state_dict(old.state_dict())  # a checkpoint from before the recompute block loads
    idx = torch.randint(0, 11, (2, 8))
    torch.testing.assert_close(new(idx, idx)[1], old(idx, idx)[1])


def saved_bytes(block, x) -> int:
    """Bytes of the distinct storages autograd keeps for backward of ``block(x)``."""
    storages = {}

    def pack(t):
        storages[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        block(x)
    params = {p.untyped_storage().data_ptr() for p in block.parameters()}
    return sum(n for ptr, n in storages.items() if ptr not in params)


@pytest.mark.parametrize("act", ["hermite:3", "tropical:5", "rational:5/4", "gelu", "silu"])
def test_saved_activation_memory(act):
    """Saved for backward: x (d) and h (4d) instead of x, h and F(h) (9d): 5/9 of the plain block."""
    torch.manual_seed(0)
    x = torch.randn(4, 16, 32, requires_grad=True)
    plain = nn.Sequential(nn.Linear(32, 128), nn.GELU(), nn.Linear(128, 32))
    fused = MLP(32, 128, act=act)
    ratio = saved_bytes(fused, x) / saved_bytes(plain, x)
    assert ratio == pytest.approx(5 / 9, abs=0.01), ratio
    unfused = MLP(32, 128, act=act, recompute=False)
    assert saved_bytes(unfused, x) == pytest.approx(saved_bytes(plain, x), rel=1e-3)  # (+ the small packed parameters)


def test_mlp_bad_arguments():
    with pytest.raises(ValueError, match=re.escape("dropout must be in [0, 1), got 1.5")):
        MLP(4, 8, dropout=1.5)
    with pytest.raises(TypeError, match="recompute must be a bool"):
        MLP(4, 8, recompute="yes")
    with pytest.raises(ValueError, match="unknown activation 'swishy'"):
        MLP(4, 8, act="swishy")
    assert "recompute=True" in repr(MLP(4, 8))
    assert isinstance(orthoact.nn.MLP(4, 8, act="rational:5/4").act, orthoact.Rational)


def test_frozen_second_linear_and_bfloat16_saved_input():
    plain, fused = block_pair("hermite", torch.float32)
    for block in (plain, fused):
        block.fc2.requires_grad_(False)
    x = torch.randn(3, 12)
    grad = torch.randn(3, 10)
    for a, b in zip(grads(plain, x, grad)[:2], grads(fused, x, grad)[:2]):
        torch.testing.assert_close(b, a)
    assert fused.fc2.weight.grad is None and fused.fc1.weight.grad is not None
    # under bfloat16 autocast the fused activation keeps its bfloat16 input, not a float32 copy
    block = MLP(32, 128, act="hermite:3")
    with torch.autocast("cpu", dtype=torch.bfloat16):
        saved = saved_bytes(block, torch.randn(4, 16, 32, requires_grad=True))
    assert saved == pytest.approx((4 * 16 * 32 * 4) + (4 * 16 * 128 * 2) + 4 * 16 * 32 * 2, rel=0.05)


def test_the_activation_backward_is_fused_with_the_recompute_unless_hooked():
    """An orthoact activation's backward runs inside the block's (one forward_and_backward call); a
    backward hook on the activation makes it the plain block, whose backward the hook sees."""
    torch.manual_seed(0)
    block = MLP(8, 32, act="fourier:3")
    x = torch.randn(4, 8)
    assert type(block(x).grad_fn).__name__ == "LinearOfRecomputedBackward"
    seen = []
    block.act.register_full_backward_hook(lambda module, gin, gout: seen.append(gout[0].shape))
    y = block(x)
    assert not {"LinearOfActivationBackward", "LinearOfRecomputedBackward"} & _graph(y)
    y.sum().backward()
    assert seen == [torch.Size([4, 32])]


def _graph(y):
    """The names of the autograd nodes behind y."""
    seen, stack = set(), [y.grad_fn]
    while stack:
        fn = stack.pop()
        if fn is not None and fn not in seen:
            seen.add(fn)
            stack.extend(f for f, _ in fn.next_functions)
    return {type(fn).__name__ for fn in seen}


def _grads(block, x):
    block.zero_grad()
    x = x.clone().requires_grad_()
    y = block(x)
    y.square().sum().backward()
    return [y.detach(), x.grad, *(p.grad.clone() for p in block.parameters())]


@pytest.mark.parametrize("kind", ["forward", "forward_pre", "fc2_forward", "global_forward", "global_pre",
                                  "global_backward"])
def test_hooked_blocks_run_as_the_plain_block(kind):
    """With a module hook on the activation or the second Linear, or on every module, the block runs
    as the plain one: a hook that changes the activation's output (or a pre-hook its input, or a hook
    the Linear's output) is honoured by the forward and the gradients, every hook runs once per step,
    a tensor hook registered on the output sees its gradient, and a global backward hook sees the
    activation's. Removing the hooks brings the fused backward back."""
    from torch.nn.modules import module as modules

    torch.manual_seed(0)
    block, x = MLP(8, 32, act="hermite:3"), torch.randn(4, 8)
    plain = MLP(8, 32, act="hermite:3", recompute=False)
    plain.load_state_dict(block.state_dict())
    calls, seen = [], []

    def double_output(module, inputs, output):
        if isinstance(module, (type(block.act), nn.Linear) if kind == "fc2_forward" else type(block.act)):
            calls.append(type(module).__name__)
            output.register_hook(lambda g: seen.append(g.shape))  # (gradients are on: no recompute)
            return 2 * output

    def shift_input(module, inputs):
        if isinstance(module, type(block.act)):
            calls.append(type(module).__name__)
            return (inputs[0] + 0.5,)

    def register(b):
        return {
            "forward": lambda: b.act.register_forward_hook(double_output),
            "forward_pre": lambda: b.act.register_forward_pre_hook(shift_input),
            "fc2_forward": lambda: b.fc2.register_forward_hook(double_output),
            "global_forward": lambda: modules.register_module_forward_hook(double_output),
            "global_pre": lambda: modules.register_module_forward_pre_hook(shift_input),
            "global_backward": lambda: modules.register_module_full_backward_hook(
                lambda module, gin, gout: seen.append(gout[0].shape) if module is b.act else None),
        }[kind]()

    results = []
    for b in (block, plain):
        handle = register(b)
        try:
            if b is block:
                assert not {"LinearOfActivationBackward", "LinearOfRecomputedBackward"} & _graph(b(x))
                calls.clear(), seen.clear()
            results.append(_grads(b, x))
            if b is block and kind != "global_backward":
                assert calls == [calls[0]], calls  # once in the step
        finally:
            handle.remove()
    for a, b in zip(*results):
        torch.testing.assert_close(a, b)
    assert not seen or all(s in (torch.Size([4, 32]), torch.Size([4, 8])) for s in seen)
    if kind in ("forward", "global_forward", "global_backward"):
        assert torch.Size([4, 32]) in seen
    assert type(block(x).grad_fn).__name__ == "LinearOfRecomputedBackward"  # hooks removed: the fused backward
