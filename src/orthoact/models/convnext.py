"""ConvNeXt (Liu et al., 2022) with a pluggable activation (paper, Section 5.2: ConvNeXt-T with
Hermite-3 on ImageNet-1k).

Patchify stem, four stages of blocks (7x7 depthwise conv, LayerNorm, inverted MLP with the
activation, layer scale, stochastic depth), LayerNorm + 2x2 stride-2 downsampling between stages,
global average pooling, LayerNorm and a linear head. The activation (a registry name/spec, class or
factory) is resolved once and every block gets its own instance; it acts on channels-last tensors,
so ``channel_dim=-1`` groups split the channels.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from orthoact.nn import mlp
from orthoact.registry import resolve

VARIANTS = {
    "atto": ((2, 2, 6, 2), (40, 80, 160, 320)),
    "femto": ((2, 2, 6, 2), (48, 96, 192, 384)),
    "pico": ((2, 2, 6, 2), (64, 128, 256, 512)),
    "nano": ((2, 2, 8, 2), (80, 160, 320, 640)),
    "tiny": ((3, 3, 9, 3), (96, 192, 384, 768)),
    "small": ((3, 3, 27, 3), (96, 192, 384, 768)),
    "base": ((3, 3, 27, 3), (128, 256, 512, 1024)),
    "mnist": ((2, 2, 2, 2), (32, 64, 128, 256)),  # small images (28x28): use stem_stride=2
}


def _ints(text: str, name: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in str(text).replace(" ", "").split(",") if v)
    except ValueError:
        raise ValueError(f"ConvNeXtConfig.{name} must be comma-separated ints like '3,3,9,3', got {text!r}") from None
    if len(values) != 4 or min(values) < 1:
        raise ValueError(f"ConvNeXtConfig.{name} needs four positive ints, got {text!r}")
    return values


@dataclass
class ConvNeXtConfig:
    variant: str = "tiny"  # atto, femto, pico, nano, tiny, small, base, mnist; or "" with depths/dims
    depths: str = ""  # e.g. "3,3,9,3" (overrides the variant)
    dims: str = ""  # e.g. "96,192,384,768"
    in_chans: int = 3
    num_classes: int = 1000
    stem_stride: int = 4  # 4 for 224px images; 2 for 28x28
    drop_path: float = 0.0
    layer_scale_init: float = 1e-6
    head_init_scale: float = 1.0
    activation: object = "gelu"
    mlp_recompute: bool = True  # keep only the MLP's input and pre-activation for backward (orthoact.nn.mlp)

    def stages(self) -> tuple[tuple[int, ...], tuple[int, ...]]:
        if self.depths or self.dims:
            if not (self.depths and self.dims):
                raise ValueError("ConvNeXtConfig: give both depths and dims (or a variant)")
            return _ints(self.depths, "depths"), _ints(self.dims, "dims")
        if self.variant not in VARIANTS:
            raise ValueError(f"ConvNeXtConfig.variant must be one of {', '.join(VARIANTS)}; got {self.variant!r}")
        return VARIANTS[self.variant]

    def __post_init__(self) -> None:
        self.stages()
        if not 0.0 <= self.drop_path < 1.0:
            raise ValueError(f"ConvNeXtConfig.drop_path must be in [0, 1), got {self.drop_path!r}")
        if self.stem_stride < 1 or self.num_classes < 1 or self.in_chans < 1:
            raise ValueError("ConvNeXtConfig: stem_stride, num_classes and in_chans must be positive")


class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over the channels of an NCHW tensor."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.permute(0, 2, 3, 1)
        x = F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
        return x.permute(0, 3, 1, 2)


def drop_path(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """Stochastic depth: drop the residual branch per sample with probability p."""
    if p == 0.0 or not training:
        return x
    keep = 1.0 - p
    mask = x.new_empty((x.shape[0],) + (1,) * (x.dim() - 1)).bernoulli_(keep)
    return x * mask / keep


class Block(nn.Module):
    def __init__(self, dim: int, act_layer, drop_path_rate: float, layer_scale_init: float, recompute: bool = True) -> None:
        super().__init__()
        self.dwconv = nn.Conv2d(dim, dim, kernel_size=7, padding=3, groups=dim)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.pwconv1 = nn.Linear(dim, 4 * dim)
        self.act = act_layer()
        self.pwconv2 = nn.Linear(4 * dim, dim)
        self.gamma = nn.Parameter(layer_scale_init * torch.ones(dim)) if layer_scale_init > 0 else None
        self.drop_path_rate = drop_path_rate
        self.recompute = recompute

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x
        x = self.dwconv(x).permute(0, 2, 3, 1)  # (N, H, W, C)
        x = mlp(self.norm(x), self.pwconv1, self.act, self.pwconv2, self.recompute)  # act output recomputed in backward
        if self.gamma is not None:
            x = self.gamma * x
        return shortcut + drop_path(x.permute(0, 3, 1, 2), self.drop_path_rate, self.training)


class ConvNeXt(nn.Module):
    def __init__(self, config: ConvNeXtConfig | None = None, **kwargs) -> None:
        super().__init__()
        config = config or ConvNeXtConfig(**kwargs)
        self.config = config
        depths, dims = config.stages()
        act_layer = resolve(config.activation)
        s = config.stem_stride
        self.downsample_layers = nn.ModuleList(
            [nn.Sequential(nn.Conv2d(config.in_chans, dims[0], kernel_size=s, stride=s), LayerNorm2d(dims[0], eps=1e-6))]
        )
        for i in range(3):
            self.downsample_layers.append(
                nn.Sequential(LayerNorm2d(dims[i], eps=1e-6), nn.Conv2d(dims[i], dims[i + 1], kernel_size=2, stride=2))
            )
        rates = torch.linspace(0, config.drop_path, sum(depths)).tolist()
        self.stages = nn.ModuleList()
        k = 0
        for i in range(4):
            blocks = [Block(dims[i], act_layer, rates[k + j], config.layer_scale_init, config.mlp_recompute) for j in range(depths[i])]
            self.stages.append(nn.Sequential(*blocks))
            k += depths[i]
        self.norm = nn.LayerNorm(dims[-1], eps=1e-6)
        self.head = nn.Linear(dims[-1], config.num_classes)
        self.apply(self._init_weights)
        with torch.no_grad():
            self.head.weight.mul_(config.head_init_scale)
            self.head.bias.mul_(config.head_init_scale)

    @staticmethod
    def _init_weights(m: nn.Module) -> None:
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.trunc_normal_(m.weight, std=0.02)
            nn.init.zeros_(m.bias)

    def min_input_size(self) -> int:
        return self.config.stem_stride * 8

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] != self.config.in_chans:
            raise ValueError(f"ConvNeXt expects (N, {self.config.in_chans}, H, W) images, got shape {tuple(x.shape)}")
        if min(x.shape[-2:]) < self.min_input_size():
            raise ValueError(
                f"input size {x.shape[-2]}x{x.shape[-1]} is too small for this ConvNeXt (stem stride "
                f"{self.config.stem_stride} and three 2x downsamplings need at least {self.min_input_size()}x{self.min_input_size()})"
            )
        for down, stage in zip(self.downsample_layers, self.stages):
            x = stage(down(x))
        return self.head(self.norm(x.mean((-2, -1))))


def convnext(variant: str = "tiny", **kwargs) -> ConvNeXt:
    return ConvNeXt(ConvNeXtConfig(variant=variant, **kwargs))
