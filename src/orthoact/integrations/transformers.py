"""Hugging Face ``transformers`` integration: orthoact activations in configs, and converted models
that save and reload.

After ``import orthoact.integrations.transformers`` (or :func:`register`):

* a config's ``hidden_act`` / ``activation_function`` may name any orthoact activation as
  ``"orthoact:<name>"`` (``"orthoact:hermite:3"``, ``"orthoact:tropical_rational:5"``,
  ``"orthoact:rational:5/4"``); every lookup builds a new module, so each layer has its own
  parameters, which ``save_pretrained``/``from_pretrained`` store and load like any weight;
* a model converted by :func:`orthoact.convert` records its sites in ``config.orthoact`` (which
  module, which family, degree, groups, options) and, where every activation named by the config
  was converted, the config's activation name too. ``from_pretrained`` then rebuilds the converted
  structure before the weights are loaded, so the reloaded model is the converted one. A recorded
  site the model does not have is refused with a message. Without the import, a config naming an
  orthoact activation fails loudly in ``transformers`` (unknown activation) rather than loading the
  original model in silence.

Nothing here downloads anything; ``transformers`` is imported when this module is.
"""

from __future__ import annotations

import warnings

from transformers import PreTrainedModel
from transformers import activations as hf_activations

from orthoact import declarations
from orthoact.conversion import add_conversion_hook, apply_sites, converted_sites, expand_targets, find_sites, site_exists
from orthoact.conversion import target_names as conversion_targets
from orthoact.registry import create, parse_spec
from orthoact.targets import ALIASES

PREFIX = "orthoact:"
CONFIG_KEY = "orthoact"
ACTIVATION_KEYS = ("hidden_act", "activation_function", "hidden_activation")
_original_post_init = PreTrainedModel.post_init


def _is_ours(key) -> bool:
    if not isinstance(key, str) or not key.startswith(PREFIX):
        return False
    try:
        parse_spec(key[len(PREFIX):])
    except ValueError:
        return False
    return True


class _ActivationTable(type(hf_activations.ACT2FN)):
    """transformers' ACT2FN, plus every ``orthoact:<name>`` (a new module per lookup)."""

    def __getitem__(self, key):
        if isinstance(key, str) and key.startswith(PREFIX):
            return create(key[len(PREFIX):])  # raises with the list of names when unknown
        return super().__getitem__(key)

    def __contains__(self, key) -> bool:
        return _is_ours(key) or super().__contains__(key)

    def get(self, key, default=None):
        return self[key] if key in self else default


def _sites_for(model, recorded: dict) -> tuple[dict, bool]:
    """The recorded sites in ``model``'s own names, and whether all of them must exist there.

    A conversion is recorded on the model that was converted (``BertForMaskedLM``: ``bert.encoder...``
    and the head's ``cls.predictions...``). Built again as the same class, every site must exist.
    As its base model (``BertModel``, also built inside the head model), the sites under the base
    prefix apply without it and the head's do not concern it. As another head on the same base
    (``GPT2LMHeadModel`` -> ``GPT2ForSequenceClassification``), the base's sites apply.
    """
    sites = dict(recorded.get("sites", {}))
    if recorded.get("model_class") == type(model).__name__:
        return sites, True
    prefix = getattr(model, "base_model_prefix", "") or ""
    is_base = getattr(model, "base_model", model) is model
    if prefix and is_base:
        return {n[len(prefix) + 1:]: e for n, e in sites.items() if n.startswith(prefix + ".")}, False
    if prefix and sites and not any(n.startswith(prefix + ".") for n in sites):
        sites = {f"{prefix}.{n}": e for n, e in sites.items()}  # recorded on the base model
    return {n: e for n, e in sites.items() if n.startswith(prefix + ".")} if prefix else sites, False


def _post_init(self) -> None:
    """After a transformers model is built (before from_pretrained loads weights): put back the
    orthoact activations its config records."""
    _original_post_init(self)
    recorded = getattr(self.config, CONFIG_KEY, None)
    if not recorded:
        return
    sites, strict = _sites_for(self, recorded)
    if not strict:
        missing = [n for n in sites if not site_exists(self, n)]
        if missing:
            warnings.warn(f"{type(self).__name__} has no activation at {missing[:3]} recorded by config.{CONFIG_KEY} "
                          f"(converted as {recorded.get('model_class')}); those sites are left as they are",
                          RuntimeWarning, stacklevel=2)
            sites = {n: e for n, e in sites.items() if n not in missing}
    apply_sites(self, sites)


def register() -> None:
    """Make ``orthoact:<name>`` activation names and recorded conversions work in ``transformers``
    (idempotent; importing this module calls it)."""
    table = hf_activations.ACT2FN
    if not isinstance(table, _ActivationTable):
        table.__class__ = _ActivationTable  # the same object every model file imported
    if PreTrainedModel.post_init is not _post_init:
        PreTrainedModel.post_init = _post_init
    add_conversion_hook(record_conversion)


def _group_of(name) -> str | None:
    """The activation group a transformers activation name belongs to (``"gelu_new"`` -> ``"gelu"``)."""
    if not isinstance(name, str):
        return None
    key = name.lower()
    for group in [*conversion_targets(), *ALIASES]:
        if key == group or key.startswith(group + "_") or (group == "gelu" and key.startswith("gelu")):
            return ALIASES.get(group, group)
    return None


def record_conversion(model, targets, family: str, degree) -> None:
    """Record a conversion of a transformers ``model`` in its config (a post-conversion hook of
    :func:`orthoact.convert`; other models are left alone)."""
    if not isinstance(model, PreTrainedModel):
        return
    sites = converted_sites(model)
    setattr(model.config, CONFIG_KEY, {"model_class": type(model).__name__, "sites": sites})
    remaining = find_sites(model, expand_targets(targets))
    if remaining:  # the config's activation name also builds activations that were not converted
        return
    converted = {group for group in conversion_targets() if set(expand_targets(group)) <= set(expand_targets(targets))}
    name = f"{PREFIX}{family}:{declarations.get(family).degree_text(degree)}"
    for key in ACTIVATION_KEYS:
        if _group_of(getattr(model.config, key, None)) in converted:
            setattr(model.config, key, name)


register()

__all__ = ["register", "record_conversion", "PREFIX", "CONFIG_KEY"]
