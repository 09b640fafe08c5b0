"""Models with a pluggable activation: GPT (language) and ConvNeXt (vision)."""

from orthoact.models.convnext import VARIANTS, ConvNeXt, ConvNeXtConfig, convnext
from orthoact.models.gpt import GPT, GPTConfig

__all__ = ["GPT", "GPTConfig", "ConvNeXt", "ConvNeXtConfig", "convnext", "VARIANTS"]
