"""Training the new activation parameters of a converted model against the original."""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Mapping

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from orthoact._progress import progress as progress_bar
from orthoact.conversion.calibration import call_model
from orthoact.conversion.finetune import activation_parameters

__all__ = ["distill", "select_output"]


def select_output(output, key=None) -> Tensor:
    """The tensor of a model output: ``output[key]``, else the output itself, else its first tensor."""
    if key is not None:
        return output[key]
    if isinstance(output, Tensor):
        return output
    if isinstance(output, Mapping) or hasattr(output, "keys"):
        for value in output.values():
            if isinstance(value, Tensor):
                return value
    if isinstance(output, (tuple, list)):
        for value in output:
            if isinstance(value, Tensor):
                return value
    raise TypeError(f"cannot find a tensor in the model output of type {type(output).__name__}; pass output=KEY")


def distill(
    student: nn.Module,
    teacher: nn.Module,
    batches: Iterable,
    *,
    steps: int = 100,
    lr: float = 1e-2,
    params: str = "activations",
    output=None,
    max_grad_norm: float | None = 1.0,
    restore_best: bool = True,
    progress: bool = True,
) -> list[float]:
    """Train ``student`` to reproduce ``teacher``'s outputs (mean squared error).

    Args:
        student: usually the model returned by :func:`convert`.
        teacher: the original model (kept frozen, in eval mode).
        batches: model inputs, as for ``convert``'s calibration; cycled for ``steps`` steps.
        steps: optimisation steps. Default: ``100``
        lr: Adam learning rate. Default: ``1e-2``
        params: ``"activations"`` (only the basis activations' parameters) or ``"all"``. Default: ``"activations"``
        output: key or index selecting the tensor in a dict/tuple output. Default: the first tensor
        max_grad_norm: gradient clipping (high-degree polynomials on wide input ranges have steep
            gradients); ``None`` disables it. Default: ``1.0``
        restore_best: end with the parameters of the step with the lowest loss. Default: ``True``
        progress: show a progress bar. Default: ``True``

    Returns:
        The loss of every step.
    """
    if params not in ("activations", "all"):
        raise ValueError(f"params must be 'activations' or 'all', got {params!r}")
    batches = list(batches)
    if not batches:
        raise ValueError("batches is empty: give at least one batch of model inputs")
    if steps < 1:
        raise ValueError(f"steps must be a positive int, got {steps!r}")
    if params == "activations":
        chosen = activation_parameters(student)
        if not chosen:
            raise ValueError("the student has no orthoact activation parameters to train; convert it first or pass params='all'")
    else:
        chosen = list(student.parameters())
    chosen_ids = {id(p) for p in chosen}
    frozen = [(p, p.requires_grad) for p in student.parameters()]
    for p in student.parameters():
        p.requires_grad_(id(p) in chosen_ids)
    modes = (student.training, teacher.training)
    student.eval()
    teacher.eval()
    optimizer = torch.optim.Adam(chosen, lr=lr)
    history: list[float] = []
    best = (math.inf, None)
    try:
        bar = progress_bar(total=steps, desc="distill", disable=not progress)
        for _, batch in zip(range(steps), itertools.cycle(batches)):
            with torch.no_grad():
                target = select_output(call_model(teacher, batch), output).float()
            prediction = select_output(call_model(student, batch), output).float()
            loss = F.mse_loss(prediction, target)
            history.append(loss.item())
            if not math.isfinite(history[-1]):
                raise FloatingPointError(f"distillation diverged at step {len(history)} (loss {history[-1]}); lower lr")
            if restore_best and history[-1] < best[0]:
                best = (history[-1], [p.detach().clone() for p in chosen])
            optimizer.zero_grad()
            loss.backward()
            if max_grad_norm is not None:
                torch.nn.utils.clip_grad_norm_(chosen, max_grad_norm)
            optimizer.step()
            bar.set_postfix(loss=f"{history[-1]:.3g}")
            bar.update(1)
        bar.close()
        if restore_best and best[1] is not None:
            with torch.no_grad():
                for p, value in zip(chosen, best[1]):
                    p.copy_(value)
    finally:
        for p, flag in frozen:
            p.requires_grad_(flag)
        student.train(modes[0])
        teacher.train(modes[1])
    return history
