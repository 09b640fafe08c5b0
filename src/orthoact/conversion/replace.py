"""Swapping the activations of an existing (pretrained) model for fitted basis activations."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable

from torch import nn

from orthoact import declarations
from orthoact.conversion.calibration import Recorded, record_inputs
from orthoact.conversion.domains import DomainChooser
from orthoact.conversion.report import ConversionReport, SiteReport
from orthoact.conversion.sites import describe_targets, expand_targets, find_sites, surrounding_placement
from orthoact.fit import fit, fit_errors
from orthoact.inputs import InputMap, parse_domain
from orthoact.targets import CLASSICAL

__all__ = ["convert", "add_conversion_hook", "DEFAULT_TARGETS"]

DEFAULT_TARGETS = CLASSICAL["gelu"].matches

#: Called as ``hook(model, targets, family, degree)`` after every conversion (integrations record
#: the conversion where their library's saving will find it, e.g. a transformers config).
_HOOKS: list[Callable] = []


def add_conversion_hook(hook: Callable) -> None:
    """Call ``hook(model, targets, family, degree)`` after every :func:`convert` (once per hook)."""
    if hook not in _HOOKS:
        _HOOKS.append(hook)


def convert(
    model: nn.Module,
    family: str = "hermite",
    degree=None,
    *,
    targets=DEFAULT_TARGETS,
    calibration: Iterable | None = None,
    groups: int = 1,
    domain="auto",
    inplace: bool = False,
    strict: bool = True,
    **fit_kwargs,
) -> tuple[nn.Module, ConversionReport]:
    """Replace every activation of the given kinds by a fitted module of ``family``.

    Args:
        model: any ``nn.Module``.
        family: the basis family of the replacements. Default: ``"hermite"``
        degree: its degree (a rational function's ``(numerator, denominator)``). Default: the family's default
        targets: activation names (``"gelu"``, ``"silu"``/``"swish"``, ``"relu"``, ``"tanh"``,
            ``"sigmoid"``, ``"mish"``, ``"leaky_relu"``, ``"elu"``, ``"softplus"``), classes, class names
            (for optional libraries such as ``transformers``) or functions to replace.
            Default: ``"gelu"`` (``nn.GELU``, the transformers GELU classes and ``F.gelu``)
        calibration: iterable of model inputs (a tensor, a tuple of positional arguments, or a dict
            of keyword arguments); each replaced activation is fitted on its own recorded inputs.
            Default: ``None`` (fit on the family's default domain)
        groups: groups of the new modules (all groups start from the same fit). Default: ``1``
        domain: where each replacement follows its formula; outside it continues along its tangent
            (see :mod:`orthoact.inputs`). ``"auto"``: for the families that take a domain (Hermite,
            Fourier, rational) each site gets the candidate ``[-s, s]`` whose uniform fit has the lowest
            RMS error on that site's calibration inputs, extension included (the rule in
            :mod:`orthoact.conversion.domains`; without calibration, the family's default fit domain);
            the tropical families get none (they grow linearly already). ``(low, high)``: that domain
            for every site, fitted uniformly on it. ``None``: no extension, each site fitted on its
            recorded inputs (orthoact 0.2's conversion). Default: ``"auto"``
        inplace: modify ``model`` itself instead of a deep copy. Default: ``False``
        strict: raise when nothing matches. Default: ``True``
        fit_kwargs: passed to :func:`orthoact.fit` (``domain``, ``match_derivative``, ``version``, ...).
            The replacements take the device and dtype of each site (of the inputs recorded there, else
            of the surrounding parameters); ``dtype=``/``device=`` here override that.

    Returns:
        ``(model, report)``.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    spec = declarations.get(family)
    targets = expand_targets(targets)
    model = model if inplace else copy.deepcopy(model)
    sites = find_sites(model, targets)
    report = ConversionReport(family, degree if degree is not None else spec.default_degree, calibration is not None)
    if not sites:
        if strict:
            raise ValueError(
                f"convert found no activation to replace in {type(model).__name__} (looked for {describe_targets(targets)}); "
                "pass targets=... to name the activation classes or functions, or strict=False to allow a no-op"
            )
        return model, report
    recorded: dict[str, Recorded] = record_inputs(model, sites, calibration) if calibration is not None else {}
    overrides = {k: fit_kwargs[k] for k in ("device", "dtype") if k in fit_kwargs}
    kwargs = {k: v for k, v in fit_kwargs.items() if k not in ("device", "dtype")}
    if "extend" in kwargs:
        raise TypeError("convert sets extend itself from domain= (None: no linear extension)")
    chooser = DomainChooser(spec, degree, kwargs) if domain == "auto" else None
    if chooser is None and domain is not None:
        InputMap(parse_domain(domain)).check(spec)
    for site in sites:
        original = site.get()
        seen = recorded.get(site.name)
        if seen is not None and seen.values.numel() == 0:
            raise ValueError(f"activation {site.name} received no input during calibration; it cannot be fitted on recorded data")
        placement = {**((seen.placement if seen else {}) or surrounding_placement(model, site.parent)), **overrides}
        samples = seen.values if seen else None
        site_domain = chooser.choose(site.name, original, samples) if chooser is not None else parse_domain(domain)
        if site_domain is None:  # fitted on what the site receives (or the default domain), no extension
            module, fitted = fit(original, family, degree, samples=samples, groups=groups, **placement, **kwargs)
            errors = vars(fitted)
        else:  # fitted uniformly on the domain, continued linearly outside; judged on what the site receives
            module, fitted = fit(original, family, degree, domain=site_domain, extend=True, groups=groups, **placement,
                                 **kwargs)
            errors = fit_errors(module, original, samples) if samples is not None else vars(fitted)
        report.degree = module.degree
        site.set(module)
        lo, hi = (samples.min().item(), samples.max().item()) if samples is not None else fitted.domain
        outside = float(((samples < site_domain[0]) | (samples > site_domain[1])).double().mean()) \
            if samples is not None and site_domain is not None else 0.0
        kind = type(original).__name__ if isinstance(original, nn.Module) else getattr(original, "__name__", "function")
        report.sites.append(SiteReport(site.name, kind, int(samples.numel()) if samples is not None else 0, lo, hi,
                                       errors["max_error"], errors["rms_error"], errors["max_derivative_error"],
                                       errors["rms_derivative_error"], site_domain, outside))
    from orthoact import integrations

    integrations.activate()  # integrations of the libraries in use register their hooks
    for hook in _HOOKS:
        hook(model, targets, family, report.degree)
    return model, report
