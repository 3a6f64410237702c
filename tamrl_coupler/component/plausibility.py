"""Physics plausibility of the imports, per cell and step, beyond the fixed ranges of the vocabulary.

Why: metadata that lies while the values stay inside their physical ranges -- shortwave in MJ m-2 d-1 labelled
W m-2, a time axis shifted by hours or in the wrong units -- changed fluxes by 20-85 % with exit status 0. The
sun gives two checks that need no other data:

* **shortwave above the top of the atmosphere.** A step's mean surface shortwave cannot exceed the insolation at
  the top of the atmosphere over that step at that cell. The bound is the insolation over the step widened by
  ``pad`` on both sides (3 h: a host labelling a step by its end, averaging its radiation over the previous step,
  or holding 3-hourly forcing over shorter steps passes; the offline driver widens it to its forcing records'
  length, e.g. 6-hourly CRU-JRA held over hourly steps; a day's window for daily steps) divided by the step length,
  plus 10 % and 25 W m-2 (cell size, rounding). Shortwave over it is forcing from another time of day -- a time
  axis or bounds shifted by hours, a time zone ignored -- or another unit.
* **shortwave near zero at noon everywhere.** Where this rank has at least MIN_LIT land cells with step-mean
  insolation above 500 W m-2 and not one of them receives 10 % of it, the values are in another unit (MJ m-2 d-1
  is 11.6 times smaller than W m-2) or are not shortwave. Clouds never darken every sunlit cell of a rank that
  much. Skipped at a run's first step (a host may hand over radiation it has not computed yet: CESM sends zeros).

and temperature one:

* **temperature daily range.** Near-surface air temperature spans at most ~35 K within a day anywhere on Earth;
  more than MAX_DAILY_RANGE_K within one (UTC) day at a cell means steps from different days or seasons (a time
  axis in the wrong units) or values in different units.

Each failure is an InputError naming the field, the cell (rank, global index, lat/lon), the step and the likely
mix-up. The checks see what the fill policy left (NaN is skipped) and only land cells; they allocate nothing per
step. ``forcing.check_plausibility: false`` turns them off.
"""

from __future__ import annotations

import numpy as np

from tamrl_coupler.component.clock import StepInfo
from tamrl_coupler.component.validation import CellLocator
from tamrl_coupler.constants import SECONDS_PER_DAY
from tamrl_coupler.errors import InputError
from tamrl_coupler.physics.solar import ToaInsolation

MAX_PAD = 3 * 3600  # s: the host time conventions tolerated either side of a step
REL_MARGIN, ABS_MARGIN = 1.10, 25.0  # shortwave bound: 110 % of the widened top-of-atmosphere mean + 25 W m-2
LIT = 500.0  # W m-2: a cell in high sun for the near-zero test
MIN_LIT = 8  # cells in high sun a rank needs before "near zero everywhere" is judged
DARK_RATIO = 0.10
MAX_DAILY_RANGE_K = 45.0


class Plausibility:
    """The checks of the module docstring for this rank's host cells. :meth:`check` raises on a failure and
    changes nothing; :meth:`commit` (once every rank's step passed) remembers the day's temperature extremes."""

    def __init__(self, locator: CellLocator, active: np.ndarray):
        self.locator = locator
        self.active = np.asarray(active, dtype=bool)
        n = self.active.size
        self.toa = ToaInsolation(locator.lat, locator.lon)
        self.pad = float(MAX_PAD)  # s either side of a step: see the module docstring
        self._wide, self._mean, self._tmp = np.zeros(n), np.zeros(n), np.zeros(n)
        self._bad, self._lit = np.zeros(n, dtype=bool), np.zeros(n, dtype=bool)
        self._day: np.datetime64 | None = None
        self.day_min, self.day_max = np.full(n, np.inf), np.full(n, -np.inf)

    def check(self, rows: dict[str, np.ndarray], info: StepInfo, label: str, first_step: bool) -> None:
        """Raise an InputError when a registered ``rsds`` or ``tas`` row (this rank's host cells) is implausible."""
        if "rsds" in rows and info.dt <= SECONDS_PER_DAY:
            self._shortwave(rows["rsds"], info, label, first_step)
        if "tas" in rows and info.dt < SECONDS_PER_DAY:
            self._temperature_range(rows["tas"], info, label)

    def _shortwave(self, sw: np.ndarray, info: StepInfo, label: str, first_step: bool) -> None:
        dt = float(info.dt)
        pad = min(self.pad, (SECONDS_PER_DAY - dt) / 2.0)
        start = info.start - np.timedelta64(int(pad), "s")
        wide, bad = self._wide, self._bad
        self.toa.integral(start, dt + 2.0 * pad, out=wide)
        wide /= dt
        np.multiply(wide, REL_MARGIN, out=self._tmp)
        self._tmp += ABS_MARGIN
        with np.errstate(invalid="ignore"):
            np.greater(sw, self._tmp, out=bad)
        bad &= self.active
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            self.toa.integral(info.start, dt, out=self._mean)
            raise InputError(
                f"forcing field 'rsds' at {label}: {self.locator.describe(i)} is {sw[i]:.6g} W m-2, above the "
                f"insolation at the top of the atmosphere over the step there ({self._mean[i] / dt:.4g} W m-2; even "
                f"with {pad / 3600:g} h either side at most {self._tmp[i]:.4g}) at {int(bad.sum())} cell(s): the "
                f"shortwave belongs to another time of day (a time axis or its bounds shifted by hours, a time "
                f"zone ignored) or is in another unit")
        if first_step:
            return
        mean, lit = self._mean, self._lit
        self.toa.integral(info.start, dt, out=mean)
        mean /= dt
        np.greater(mean, LIT, out=lit)
        lit &= self.active
        np.isfinite(sw, out=bad)  # missing values (fill policy 'missing') are not judged
        lit &= bad
        n_lit = int(np.count_nonzero(lit))
        if n_lit < MIN_LIT:
            return
        ratio = self._tmp
        ratio.fill(-np.inf)
        np.divide(sw, mean, out=ratio, where=lit)
        brightest = float(ratio.max())
        if brightest < DARK_RATIO:
            i = int(np.flatnonzero(lit)[0])
            raise InputError(
                f"forcing field 'rsds' at {label}: all {n_lit} land cells of rank {self.locator.rank} in high sun "
                f"(top-of-atmosphere mean above {LIT:g} W m-2) receive less than {DARK_RATIO:.0%} of it (at most "
                f"{brightest:.3g}; e.g. {self.locator.describe(i)}: {sw[i]:.4g} W m-2 under {mean[i]:.4g} W m-2): no "
                f"sky is that dark everywhere -- the values are likely MJ m-2 d-1 (11.6 times smaller than W m-2) "
                f"or another quantity labelled W m-2")

    def _temperature_range(self, tas: np.ndarray, info: StepInfo, label: str) -> None:
        day = info.start.astype("datetime64[D]")
        if day != self._day:
            return  # the day's first step: nothing to compare with yet (commit starts the day)
        tmp, bad = self._tmp, self._bad
        with np.errstate(invalid="ignore"):
            np.fmax(self.day_max, tas, out=tmp)
            tmp -= np.fmin(self.day_min, tas, out=self._wide)
            np.greater(tmp, MAX_DAILY_RANGE_K, out=bad)
        bad &= self.active
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise InputError(
                f"forcing field 'tas' at {label}: {self.locator.describe(i)} is {tas[i]:.5g} K, so that day's air "
                f"temperature spans {tmp[i]:.3g} K (between {self.day_min[i]:.5g} and {self.day_max[i]:.5g} K before "
                f"this step; at {int(bad.sum())} cell(s)); no day on Earth spans more than ~35 K: the steps come "
                f"from different days or seasons (a time axis in the wrong units) or mix units")

    def commit(self, rows: dict[str, np.ndarray], info: StepInfo) -> None:
        """The step passed everywhere: carry the day's temperature extremes (a new day starts them again)."""
        if "tas" not in rows:
            return
        day = info.start.astype("datetime64[D]")
        if day != self._day:
            self._day = day
            self.day_min.fill(np.inf)
            self.day_max.fill(-np.inf)
        tas = rows["tas"]
        np.fmin(self.day_min, tas, out=self.day_min)
        np.fmax(self.day_max, tas, out=self.day_max)
