"""What :func:`orthoact.convert` did, site by site."""

from __future__ import annotations

from dataclasses import dataclass, field

from orthoact import declarations

__all__ = ["SiteReport", "ConversionReport"]


@dataclass
class SiteReport:
    name: str
    original: str
    recorded: int
    input_min: float
    input_max: float
    max_error: float
    rms_error: float
    max_derivative_error: float
    rms_derivative_error: float
    domain: tuple[float, float] | None = None  # where the replacement follows its formula (None: everywhere)
    outside: float = 0.0  # share of the recorded inputs outside the domain (continued linearly)


@dataclass
class ConversionReport:
    family: str
    degree: object
    calibrated: bool
    sites: list[SiteReport] = field(default_factory=list)

    @property
    def label(self) -> str:
        return f"{self.family}-{declarations.get(self.family).degree_text(self.degree)}"

    def __str__(self) -> str:
        head = f"converted {len(self.sites)} activation(s) to {self.label}" + (
            " (fitted on recorded inputs)" if self.calibrated else " (fitted on the default domain)"
        )
        lines = [head, f"{'module':<48}{'original':<22}{'inputs':>9}{'min':>9}{'max':>9}{'domain':>16}{'outside':>9}"
                       f"{'max err':>10}{'rms err':>10}"]
        for s in self.sites:
            domain = "-" if s.domain is None else f"[{s.domain[0]:.3g}, {s.domain[1]:.3g}]"
            lines.append(
                f"{s.name:<48}{s.original:<22}{s.recorded:>9}{s.input_min:>9.3g}{s.input_max:>9.3g}{domain:>16}"
                f"{100 * s.outside:>8.2f}%{s.max_error:>10.3g}{s.rms_error:>10.3g}"
            )
        return "\n".join(lines)
