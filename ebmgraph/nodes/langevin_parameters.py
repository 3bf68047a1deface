"""The one Langevin parameterization: ``x <- x - a * grad E(x) / T + b * xi``.

Papers write the same update four ways; each maps to (a, b, T):

=====================================  ===============================  =====================
convention                             update                           (a, b, T)
=====================================  ===============================  =====================
separate noise (IGEBM, Improved CD)    x - s grad E + sigma xi          (s, sigma, 1)
tied epsilon (short-run, Dual-MCMC)    x - eps^2/2 grad E + eps xi      (eps^2/2, eps, 1)
eta (SGLD / Welling-Teh)               x - eta grad E + sqrt(2 eta) xi  (eta, sqrt(2 eta), 1)
temperature-scaled drift (Hat EBM)     x - eps^2/2 grad(E/T) + eps xi   (eps^2/2, eps, T)
=====================================  ===============================  =====================

The chain targets exp(-E / T_eff) in the small-step limit with ``T_eff = T * b^2 / (2 a)``.
"""

from __future__ import annotations

import math

import attrs

from ebmgraph.nodes.config_checks import clamp_problems


@attrs.define
class LangevinParameters:
    """Fields shared by the Langevin and MALA kernels. Give exactly one of: ``step_size`` with
    ``noise``; ``epsilon``; or ``eta``. ``compile`` runs each step's energy and input gradient
    through ``torch.compile`` (``train.compile_mode``; the first steps pay the compilation)."""

    steps: int = 60
    step_size: float | None = None
    noise: float | None = None
    epsilon: float | None = None
    eta: float | None = None
    temperature: float = 1.0
    clip_grad_value: float | None = None
    clip_grad_norm: float | None = None
    clamp: tuple[float, float] | None = None
    compile: bool = False

    def problems(self) -> list[tuple[str, str]]:
        """(key, message) for every inconsistency; empty when the parameters are usable."""
        given = [name for name, used in (("step_size/noise", self.step_size is not None or self.noise is not None),
                                         ("epsilon", self.epsilon is not None),
                                         ("eta", self.eta is not None)) if used]
        out = []
        if len(given) != 1:
            found = " and ".join(given) if given else "none"
            key = {"step_size/noise": "step_size"}.get(given[-1], given[-1]) if given else "step_size"
            out.append((key, f"give exactly one Langevin parameterization (step_size with noise, epsilon, or eta), "
                             f"found {found}"))
        elif given == ["step_size/noise"] and (self.step_size is None or self.noise is None):
            missing = "noise" if self.noise is None else "step_size"
            out.append((missing, f"step_size and noise go together: '{missing}' is missing"))
        for key in ("step_size", "noise", "epsilon", "eta", "clip_grad_value", "clip_grad_norm"):
            value = getattr(self, key)
            if value is not None and value < 0:
                out.append((key, f"must be >= 0, found {value}"))
        if self.temperature <= 0:
            out.append(("temperature", f"must be > 0, found {self.temperature}"))
        if self.steps < 0:
            out.append(("steps", f"must be >= 0, found {self.steps}"))
        out += clamp_problems(self.clamp)
        return out

    def resolved(self) -> tuple[float, float, float]:
        """(a, b, T) of ``x <- x - a grad E / T + b xi``."""
        if self.epsilon is not None:
            a, b = self.epsilon**2 / 2, self.epsilon
        elif self.eta is not None:
            a, b = self.eta, math.sqrt(2 * self.eta)
        else:
            a, b = self.step_size, self.noise
        return a, b, self.temperature

    @property
    def drift(self) -> float:
        a, _, temperature = self.resolved()
        return a / temperature

    @property
    def effective_temperature(self) -> float:
        """T * b^2 / (2 a): the temperature the chain samples at in the small-step limit."""
        a, b, temperature = self.resolved()
        return math.inf if a == 0 else temperature * b**2 / (2 * a)

    def describe(self) -> str:
        a, b, temperature = self.resolved()
        return (f"{self.steps} steps, a={a:.6g}, b={b:.6g}, T={temperature:.6g}, "
                f"effective T={self.effective_temperature:.6g}")
