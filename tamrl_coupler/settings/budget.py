"""``budget:`` of a run config: which carbon-budget mode the component's NEE follows (physics/budget.py) and how
the annual expectation is formed. Chosen explicitly by every shipped config (docs/budget.md says why)."""

from __future__ import annotations

from dataclasses import dataclass

from tamrl_coupler.errors import ConfigError
from tamrl_coupler.physics.budget import BudgetMode, BudgetSpec

PRIOR_KEYWORDS = ("auto", "none")


@dataclass
class BudgetSection:
    """``budget:``: ``mode`` as_trained | balanced | target; for target exactly one of ``sink_pgc`` (global annual
    sink, PgC/yr, uptake positive) or ``sink_fraction`` (each cell's sink as a fraction of its GPP); ``prior``: the
    per-cell monthly climatology of as-trained GPP and Reco that stands in for months the run has not seen yet
    (``auto``: the one shipped beside the checkpoint, when there is one; ``none``; or a file); ``running``: the
    run's own months replace the prior's as they are seen (false: the prior's factors only)."""

    mode: str | None = None  # None: not chosen -- as_trained for a run, balanced for a prior (commands/prior.py)
    sink_pgc: float | None = None
    sink_fraction: float | None = None
    prior: str = "auto"
    running: bool = True

    def validate(self) -> None:
        self.spec()
        if not str(self.prior).strip():
            raise ConfigError("budget.prior: expected 'auto', 'none' or a climatology file")

    def spec(self) -> BudgetSpec:
        try:
            return BudgetSpec(BudgetMode.parse(self.mode or "as_trained"), self.sink_pgc, self.sink_fraction,
                              self.running)
        except ValueError as exc:
            raise ConfigError(f"budget: {exc}") from None


__all__ = ["BudgetSection", "PRIOR_KEYWORDS"]
