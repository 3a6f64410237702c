"""Carbon-budget modes for NEE: what TAM-RL learned from towers (``as_trained``), each cell's NEE summing to zero over
a year (``balanced``, the convention of inversion biosphere priors such as CarbonTracker's CASA), or a prescribed
annual sink (``target``: a global sink in PgC per year, or a fraction of each cell's GPP).

How: GPP is never touched. Each cell's Reco is multiplied by one factor per month, f = (1 - s) G / R, where G and R
are the cell's *expected* annual as-trained GPP and Reco and s the sink's share of GPP (0 when balanced). A
multiplicative factor keeps the diurnal, day-to-day and seasonal shape of Reco; NEE = GPP - f Reco is then made by
``physics.carbon.nee_from_components`` as always, so the identity stays exact.

The expectation without look-ahead (:class:`AnnualExpectation`): twelve calendar-month slots per cell of as-trained
GPP and Reco totals (gC m-2). A slot holds the run's own latest month once the run has seen it (``running``), and
before that the prior's month (a climatology: for the shipped checkpoints, their own fluxes on the CRU CL 1.0
global test bed, docs/budget.md). The factor changes only when a month closes. On a repeated year the budget is
then exact from the second year on (the slots hold the previous twelve months, which equal the coming ones); in the
first year it is as exact as the prior is. Without a prior and before a month has been seen, the factor is 1.

Everything here is per cell and in a fixed order, so the factors do not depend on how cells are split over ranks;
the one global number (the GPP a global sink is shared over) is summed exactly (``math.fsum``) by the caller over
every cell, again independent of the split.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum

import numpy as np

N_SLOTS = 12
DAYS_PER_YEAR = 365.2425
PG = 1.0e15  # g per Pg


class BudgetMode(str, Enum):
    """What NEE's annual sum is made to be."""

    AS_TRAINED = "as_trained"
    BALANCED = "balanced"
    TARGET = "target"

    @classmethod
    def parse(cls, value: str | BudgetMode) -> BudgetMode:
        if isinstance(value, BudgetMode):
            return value
        try:
            return cls(str(value).lower())
        except ValueError:
            raise ValueError(f"budget mode {value!r} is not known; expected one of "
                             f"{[m.value for m in cls]}") from None


@dataclass(frozen=True)
class BudgetSpec:
    """A budget mode and its target: ``sink_pgc`` (global annual sink, PgC yr-1, uptake positive) or
    ``sink_fraction`` (each cell's annual sink as a fraction of its GPP) for ``target``."""

    mode: BudgetMode = BudgetMode.AS_TRAINED
    sink_pgc: float | None = None
    sink_fraction: float | None = None
    running: bool = True  # the run's own months replace the prior's as they are seen

    def __post_init__(self) -> None:
        if self.mode is BudgetMode.TARGET:
            if (self.sink_pgc is None) == (self.sink_fraction is None):
                raise ValueError("budget mode 'target' needs exactly one of sink_pgc (global annual sink, PgC/yr) "
                                 "or sink_fraction (per-cell sink as a fraction of GPP)")
            if self.sink_pgc is not None and not math.isfinite(self.sink_pgc):
                raise ValueError(f"budget sink_pgc {self.sink_pgc}: expected a finite global sink in PgC/yr")
            if self.sink_fraction is not None and not -1.0 < self.sink_fraction < 1.0:
                raise ValueError(f"budget sink_fraction {self.sink_fraction}: expected a fraction of GPP in (-1, 1)")
        elif self.sink_pgc is not None or self.sink_fraction is not None:
            raise ValueError(f"budget mode {self.mode.value!r} takes no sink (sink_pgc / sink_fraction are for "
                             "'target')")

    @property
    def adjusts(self) -> bool:
        return self.mode is not BudgetMode.AS_TRAINED

    @property
    def needs_global_gpp(self) -> bool:
        return self.mode is BudgetMode.TARGET and self.sink_pgc is not None

    def describe(self) -> str:
        if self.mode is BudgetMode.BALANCED:
            return "balanced: each cell's NEE sums to zero over a year (Reco scaled per cell, GPP untouched)"
        if self.mode is BudgetMode.TARGET:
            what = (f"a global sink of {self.sink_pgc:g} PgC/yr shared in proportion to GPP" if self.sink_pgc
                    is not None else f"each cell's sink {self.sink_fraction:g} x its GPP")
            return f"target: NEE sums over a year to {what} (Reco scaled per cell, GPP untouched)"
        return "as_trained: NEE as TAM-RL learned it from flux towers (no budget constraint)"

    def attributes(self, prior: str) -> dict[str, str]:
        """What every output file says about the mode (global attributes)."""
        out = {"budget_mode": self.mode.value, "budget_description": self.describe()}
        if self.adjusts:
            out["budget_expectation"] = (
                ("trailing 12 calendar months of the run's own as-trained GPP and Reco per cell" if self.running
                 else "prior climatology only (fixed per-cell monthly factors)")
                + f"; months not yet seen: {prior}; factor f = (1 - s) G / R applied to Reco, changed monthly")
        if self.sink_pgc is not None:
            out["budget_sink_PgC_per_year"] = f"{self.sink_pgc:g}"
        if self.sink_fraction is not None:
            out["budget_sink_fraction_of_gpp"] = f"{self.sink_fraction:g}"
        return out


class AnnualExpectation:
    """Per cell: the as-trained GPP and Reco of the last twelve calendar months (slots), the prior's where a month
    has not been seen, and the current month's sums; all in gC m-2 (rates times days)."""

    ARRAYS = ("slot_gpp", "slot_reco", "slot_days", "slot_seen", "month_gpp", "month_reco", "month_days",
              "factor")

    def __init__(self, n: int, prior_gpp: np.ndarray | None = None, prior_reco: np.ndarray | None = None):
        """``prior_gpp``/``prior_reco`` (n, 12): monthly-mean rates [gC m-2 d-1] of a climatology, NaN where a cell
        has none."""
        self.n = n
        self.slot_gpp = np.zeros((n, N_SLOTS))
        self.slot_reco = np.zeros((n, N_SLOTS))
        self.slot_days = np.zeros((n, N_SLOTS))  # 0: the slot holds nothing
        self.slot_seen = np.zeros((n, N_SLOTS))  # 1: the run's own month
        self.month_gpp = np.zeros(n)
        self.month_reco = np.zeros(n)
        self.month_days = np.zeros(n)
        self.factor = np.ones(n)
        if prior_gpp is not None and prior_reco is not None:
            days = np.array([31, 28.2425, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31])
            ok = np.isfinite(prior_gpp) & np.isfinite(prior_reco)
            self.slot_gpp = np.where(ok, prior_gpp * days, 0.0)
            self.slot_reco = np.where(ok, prior_reco * days, 0.0)
            self.slot_days = np.where(ok, days, 0.0)

    # --------------------------------------------------------------------------------------------- accumulation
    def add(self, gpp: np.ndarray, reco: np.ndarray, days: float) -> None:
        """One completed model period: its as-trained mean rates [gC m-2 d-1] over ``days`` days (NaN: no value
        for that cell, not counted)."""
        ok = np.isfinite(gpp) & np.isfinite(reco)
        self.month_gpp += np.where(ok, gpp, 0.0) * days
        self.month_reco += np.where(ok, reco, 0.0) * days
        self.month_days += np.where(ok, days, 0.0)

    def close_month(self, month: int, running: bool = True) -> None:
        """The calendar month ``month`` (0 = January) has ended: with ``running``, its sums replace the slot (where
        the cell had values), and the next month's sums start from zero."""
        if running:
            have = self.month_days > 0
            self.slot_gpp[:, month] = np.where(have, self.month_gpp, self.slot_gpp[:, month])
            self.slot_reco[:, month] = np.where(have, self.month_reco, self.slot_reco[:, month])
            self.slot_days[:, month] = np.where(have, self.month_days, self.slot_days[:, month])
            self.slot_seen[:, month] = np.where(have, 1.0, self.slot_seen[:, month])
        self.month_gpp[:] = 0.0
        self.month_reco[:] = 0.0
        self.month_days[:] = 0.0

    # --------------------------------------------------------------------------------------------- the factor
    def annual_gpp(self) -> np.ndarray:
        """Expected annual GPP [gC m-2 yr-1] per cell: the sum of the slots when they hold a year (365 days or
        more), else what they hold scaled to a year of 365.2425 days (0 where no slot holds anything)."""
        days = self.slot_days.sum(axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            scale = np.where(days >= 365.0, 1.0, np.where(days > 0, DAYS_PER_YEAR / days, 0.0))
        return self.slot_gpp.sum(axis=1) * scale

    def update_factor(self, spec: BudgetSpec, global_gpp_g: float | None = None) -> np.ndarray:
        """The Reco factor of each cell for the coming month(s), into ``self.factor``. ``global_gpp_g``: the
        expected global annual GPP [gC yr-1] (:func:`global_annual_gpp` over every cell) for a global sink."""
        if not spec.adjusts:
            self.factor[:] = 1.0
            return self.factor
        g = self.slot_gpp.sum(axis=1)
        r = self.slot_reco.sum(axis=1)
        share = sink_share(spec, global_gpp_g)
        usable = (self.slot_days.sum(axis=1) > 0) & (r > 0) & (g >= 0)
        with np.errstate(divide="ignore", invalid="ignore"):
            self.factor[:] = np.where(usable, (1.0 - share) * g / r, 1.0)
        return self.factor

    # --------------------------------------------------------------------------------------------- restart
    def state_arrays(self) -> dict[str, np.ndarray]:
        return {k: getattr(self, k) for k in self.ARRAYS}

    def load_state(self, arrays: dict[str, np.ndarray]) -> None:
        for k in self.ARRAYS:
            getattr(self, k)[...] = arrays[k]


def sink_share(spec: BudgetSpec, global_gpp_g: float | None) -> float:
    """s: the annual sink as a share of GPP (0 balanced; the fraction; or the global sink over global GPP)."""
    if spec.mode is not BudgetMode.TARGET:
        return 0.0
    if spec.sink_fraction is not None:
        return float(spec.sink_fraction)
    if global_gpp_g is None or not global_gpp_g > 0:
        return 0.0  # no month seen yet and no prior: nothing to share the sink over (the factor stays 1)
    share = float(spec.sink_pgc) * PG / global_gpp_g
    if not -1.0 < share < 1.0:  # Reco would have to turn negative (or more than double)
        raise ValueError(f"budget sink_pgc {spec.sink_pgc:g} PgC/yr is {share:.2f} x the expected global GPP of "
                         f"{global_gpp_g / PG:.4g} PgC/yr of this run's cells: a sink must be a fraction of GPP in "
                         f"(-1, 1) (a regional run needs a regional sink, or sink_fraction)")
    return share


def global_annual_gpp(annual_gpp: np.ndarray, weight_m2: np.ndarray) -> float:
    """Σ annual GPP x land area [gC yr-1], summed exactly (``math.fsum``: the same value whatever the order or the
    split of the cells over ranks, as long as every cell is in)."""
    return math.fsum((np.asarray(annual_gpp, dtype=np.float64) * weight_m2).tolist())


def month_ends(starts: np.ndarray, unit: str) -> np.ndarray:
    """Whether each period (starts, datetime64, in ``unit`` 'D' or 'M') is the last of its calendar month."""
    s = np.asarray(starts).astype(f"datetime64[{unit}]")
    nxt = s + 1
    return s.astype("datetime64[M]") != nxt.astype("datetime64[M]")


def apply_budget(gpp: np.ndarray, reco: np.ndarray, starts: np.ndarray, period: str, spec: BudgetSpec,
                 prior: tuple[np.ndarray, np.ndarray] | None = None, weight_m2: np.ndarray | None = None,
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Offline, the component's rule step by step: as-trained (cells, T) GPP and Reco rates of periods starting at
    ``starts`` (daily or monthly, contiguous, from each cell's run start) -> (Reco adjusted, the factor used), with
    no look-ahead: each period's factor comes from months that ended before it (and the prior)."""
    unit = "D" if period == "daily" else "M"
    s = np.asarray(starts).astype(f"datetime64[{unit}]")
    days = np.ones(s.size) if unit == "D" else ((s + 1).astype("datetime64[D]") - s.astype("datetime64[D]")
                                                ).astype(np.float64)
    ends = month_ends(s, unit)
    months = s.astype("datetime64[M]").astype(np.int64) % 12
    exp = AnnualExpectation(gpp.shape[0], *(prior or (None, None)))
    global_gpp = _global(exp, spec, weight_m2)
    exp.update_factor(spec, global_gpp)
    out = np.empty_like(reco, dtype=np.float64)
    factors = np.empty_like(out)
    for t in range(s.size):
        factors[:, t] = exp.factor
        out[:, t] = reco[:, t] * exp.factor
        exp.add(gpp[:, t], reco[:, t], days[t])
        if ends[t]:
            exp.close_month(int(months[t]), spec.running)
            exp.update_factor(spec, _global(exp, spec, weight_m2))
    return out, factors


def _global(exp: AnnualExpectation, spec: BudgetSpec, weight_m2: np.ndarray | None) -> float | None:
    if not spec.needs_global_gpp:
        return None
    if weight_m2 is None:
        raise ValueError("budget mode 'target' with a global sink needs each cell's land area (weights)")
    return global_annual_gpp(exp.annual_gpp(), weight_m2)


__all__ = ["AnnualExpectation", "BudgetMode", "BudgetSpec", "N_SLOTS", "apply_budget", "global_annual_gpp",
           "month_ends", "sink_share"]
