"""Converting existing (pretrained) models: their activations replaced by fitted basis activations.

:func:`convert` finds every activation of the given kinds (by name, ``"gelu"``, ``"silu"``, ``"relu"``,
``"tanh"``, ..., or by class or function: ``nn.GELU``, ``nn.SiLU``, the Hugging Face ``transformers``
activation classes, or a function such as ``F.gelu`` stored as a module attribute like
``intermediate_act_fn``), optionally records what each one receives on calibration batches, and
replaces each by a module of the chosen family fitted to it on its own recorded inputs, on the site's
device and in its dtype. :func:`distill` then trains the new activation parameters against the
original model. :func:`save_converted` / :func:`load_converted` store a converted model as a small
JSON description of its sites beside a ``safetensors`` file of its weights.

Real pretrained models need the calibration: their pre-activations are far from N(0, 1) (in one
transformer we probed, std about 1 but values from -17 to +25), and a polynomial fitted on a narrow
range fails outside it.

One concept per file: :mod:`~orthoact.conversion.sites` (finding and replacing activations),
:mod:`~orthoact.conversion.calibration` (recording their inputs), :mod:`~orthoact.conversion.replace`
(:func:`convert` and its post-conversion hooks), :mod:`~orthoact.conversion.report`,
:mod:`~orthoact.conversion.distill`, :mod:`~orthoact.conversion.finetune` (freezing all but the
activations and a head, as the paper's fine-tuning notebook), :mod:`~orthoact.conversion.saving`,
:mod:`~orthoact.conversion.domains` (the domain each site gets).
"""

from orthoact.conversion.calibration import Recorded, call_model, record_inputs
from orthoact.conversion.distill import distill, select_output
from orthoact.conversion.finetune import activation_parameters, finetune_parameters
from orthoact.conversion.replace import DEFAULT_TARGETS, add_conversion_hook, convert
from orthoact.conversion.report import ConversionReport, SiteReport
from orthoact.conversion.saving import apply_sites, converted_sites, load_converted, save_converted
from orthoact.conversion.sites import Site, expand_targets, find_sites, set_site, site_exists, target_names

__all__ = ["convert", "distill", "save_converted", "load_converted", "converted_sites", "apply_sites",
           "add_conversion_hook", "ConversionReport", "SiteReport", "DEFAULT_TARGETS", "Site", "find_sites",
           "expand_targets", "target_names", "set_site", "site_exists", "Recorded", "record_inputs", "call_model",
           "select_output", "finetune_parameters", "activation_parameters"]
