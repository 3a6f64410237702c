"""The component's carbon-budget stage: NEE in the configured budget mode (``budget:`` of the run config,
physics/budget.py). After every evaluation the period estimate's Reco is multiplied by each model cell's factor (GPP
and the spreads untouched); at every period end the period's as-trained GPP and Reco enter the cell's running
monthly sums, and when a calendar month ends the factor is formed anew. Everything is carried by restarts.

The stage keeps the as-trained estimate of the last evaluation (two rows), so the sums see what the model
predicted, not what was adjusted. A global sink is shared in proportion to each cell's expected GPP; the global sum
is exact over an allgather of every cell's value (the same on any number of ranks).
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from tamrl_coupler.component.rows import NamedRows
from tamrl_coupler.physics.budget import AnnualExpectation, BudgetSpec, global_annual_gpp, month_ends
from tamrl_coupler.settings.budget import BudgetSection

log = logging.getLogger("tamrl_coupler.component")


class BudgetStage:
    """Reco factors per model cell of this rank; see the module docstring."""

    def __init__(self, section: BudgetSection, geometry: Any, checkpoint: Any, fingerprint: str, base_dir: Any,
                 period: str):
        from tamrl_coupler.io.budgetprior import describe_prior, resolve_prior

        self.spec: BudgetSpec = section.spec()
        self.geo = geometry
        self.period = period
        n = geometry.n_model
        self.weight = np.asarray(geometry.model_area * geometry.model_landfrac, dtype=np.float64)
        prior = None
        if self.spec.adjusts and not (checkpoint is None and section.prior == "auto"):
            prior = resolve_prior(section.prior, checkpoint, base_dir)
        g = r = None
        if prior is not None:
            g, r, far = prior.for_cells(geometry.model_lat, geometry.model_lon)
            if far:
                log.info("rank %d: %d model cell(s) have no budget prior within reach; they start from their own "
                         "months", geometry.rank, far)
        self.prior_text = describe_prior(prior, fingerprint)
        self.expectation = AnnualExpectation(n, g, r)
        self.as_trained = NamedRows(("gpp", "reco"), n)  # the factor: update_factor(), once every rank is set up

    @property
    def factor(self) -> np.ndarray:
        return self.expectation.factor

    def attributes(self) -> dict[str, str]:
        """The mode, its target and the expectation's rule, for every output file."""
        return self.spec.attributes(self.prior_text)

    def apply(self, estimate: NamedRows) -> None:
        """After an evaluation: keep the as-trained rates, then scale the estimate's Reco in place."""
        if not self.spec.adjusts:
            return
        np.copyto(self.as_trained["gpp"], estimate["gpp"])
        np.copyto(self.as_trained["reco"], estimate["reco"])
        reco = estimate["reco"]
        np.multiply(reco, self.expectation.factor, out=reco)

    def end_period(self, period_start: np.datetime64, period_days: float) -> bool:
        """The period from ``period_start`` is complete (its last step evaluated): its as-trained rates enter the
        month's sums; a month that ends with it closes its slot. Returns whether one did: then the caller sets the
        next factor (:meth:`update_factor`, collective, outside any one rank's failure path)."""
        if not self.spec.adjusts:
            return False
        self.expectation.add(self.as_trained["gpp"], self.as_trained["reco"], period_days)
        unit = "D" if self.period == "daily" else "M"
        start = np.datetime64(period_start, unit)
        if not bool(month_ends(np.array([start]), unit)[0]):
            return False
        self.expectation.close_month(int(start.astype("datetime64[M]").astype(np.int64) % 12), self.spec.running)
        return True

    def update_factor(self, agreement: Any) -> None:
        """The factor from the slots; with a global sink, the global expected GPP summed exactly over all ranks
        (collective; the same number on every rank and for any split). Forming it can fail (a sink larger than the
        run's GPP): inside ``agreement``'s guard, so every rank reports the same error and none waits."""
        global_gpp = None
        if self.spec.needs_global_gpp:
            contrib = self.expectation.annual_gpp() * self.weight
            every = np.concatenate(self.geo.comm.allgather(contrib))
            global_gpp = global_annual_gpp(every, np.ones_like(every))
        with agreement.guard("the carbon budget's Reco factor"):
            self.expectation.update_factor(self.spec, global_gpp)

    # restart ----------------------------------------------------------------------------------------------------
    def state_arrays(self) -> dict[str, tuple[tuple[str, ...], np.ndarray]]:
        if not self.spec.adjusts:
            return {}
        out: dict[str, tuple[tuple[str, ...], np.ndarray]] = {}
        for k, v in self.expectation.state_arrays().items():
            out[f"budget_{k}"] = (("model_cell", "month_slot") if v.ndim == 2 else ("model_cell",), v)
        for k, v in self.as_trained.items():
            out[f"budget_as_trained_{k}"] = (("model_cell",), v)
        return out

    def load_state(self, arrays: dict[str, np.ndarray]) -> None:
        """From a restart (this rank's cells); a restart without budget arrays starts the sums afresh."""
        if not self.spec.adjusts:
            return
        if "budget_factor" not in arrays:
            log.warning("restart has no budget state: the budget's running sums start afresh (prior: %s)",
                        self.prior_text)
            return
        self.expectation.load_state({k: arrays[f"budget_{k}"] for k in AnnualExpectation.ARRAYS})
        for k, v in self.as_trained.items():
            v[:] = arrays[f"budget_as_trained_{k}"]


__all__ = ["BudgetStage"]
