"""Physics plausibility of the imports, per cell and step, beyond the fixed ranges of the vocabulary.

Why: metadata that lies while the values stay inside their physical ranges -- shortwave in MJ m-2 d-1 labelled
W m-2, a time axis shifted by hours or in the wrong units -- changed fluxes by 20-85 % with exit status 0. The
sun gives two checks that need no other data:

* **shortwave above the top of the atmosphere.** A step's mean surface shortwave cannot exceed the insolation at
  the top of the atmosphere over that step at that cell, so not its highest instantaneous value either. The
  bound is the highest top-of-atmosphere insolation in the step widened by ``pad`` on both sides (3 h: a host
  labelling a step by its end, averaging its radiation over the previous step, or holding 3-hourly forcing over
  shorter steps passes; the offline driver widens it to its forcing records' length, e.g. 6-hourly CRU-JRA held
  over hourly steps; the whole day for daily steps), plus 10 % and 25 W m-2 (cell size, rounding). Shortwave over
  it -- sunlight where the sun is down for hours either side -- is forcing from another time of day (a time axis
  or its bounds shifted by hours, a time zone ignored) or another unit.
* **shortwave near zero at noon everywhere.** Where this rank has at least MIN_LIT land cells with the sun high
  at the step's middle (top-of-atmosphere insolation above 500 W m-2) and not one of them receives 12 % of it, the
  values are in another unit (MJ m-2 d-1 is 11.6 times smaller than W m-2) or are not shortwave. Clouds never
  darken every sunlit cell of a rank that much. Skipped at a run's first step (a host may hand over radiation it
  has not computed yet: CESM sends zeros).

and temperature one:

* **temperature daily range.** Near-surface air temperature spans at most ~35 K within a day anywhere on Earth;
  more than MAX_DAILY_RANGE_K within one (UTC) day at a cell means steps from different days or seasons (a time
  axis in the wrong units) or values in different units.

Each failure is an InputError naming the field, the cell (rank, global index, lat/lon), the step and the likely
mix-up. The checks see what the fill policy left (NaN is skipped) and only land cells; they allocate nothing per
step and need no trigonometric function per cell and step (the cells' hour angles are turned by the step's with
the angle-addition formulas). ``forcing.check_plausibility: false`` turns them off.
"""

from __future__ import annotations

import numpy as np

from tamrl_coupler.component.clock import StepInfo
from tamrl_coupler.component.validation import CellLocator
from tamrl_coupler.constants import SECONDS_PER_DAY
from tamrl_coupler.errors import InputError
from tamrl_coupler.physics.solar import (
    SOLAR_CONSTANT,
    ToaInsolation,
    day_of_year_and_utc_hours,
    declination,
    eccentricity_factor,
    equation_of_time_minutes,
)

MAX_PAD = 3 * 3600  # s: the host time conventions tolerated either side of a step
REL_MARGIN, ABS_MARGIN = 1.10, 25.0  # shortwave bound: 110 % of the highest insolation in the window + 25 W m-2
LIT = 500.0  # W m-2: a cell in high sun (at the step's middle) for the near-zero test
MIN_LIT = 8  # cells in high sun a rank needs before "near zero everywhere" is judged
DARK_RATIO = 0.12  # of the insolation at the step's middle; MJ m-2 d-1 labelled W m-2 gives at most ~0.08
MAX_DAILY_RANGE_K = 45.0


class Plausibility:
    """The checks of the module docstring for this rank's land host cells (the others are never looked at).
    :meth:`check` raises on a failure and changes nothing; :meth:`commit` (once every rank's step passed)
    remembers the day's temperature extremes. About twenty array operations per step on land cells only, in
    preallocated buffers."""

    def __init__(self, locator: CellLocator, active: np.ndarray):
        self.locator = locator
        self.cells = np.flatnonzero(np.asarray(active, dtype=bool))  # the cells checked: land
        m = self.cells.size
        lat, lon = locator.lat[self.cells], locator.lon[self.cells]
        self.toa = ToaInsolation(lat, lon)  # exact step means, for messages only
        phi, lam = np.deg2rad(lat), np.deg2rad(lon)  # a cell's hour angle: its longitude + longitude 0's
        self.sin_phi, self.cos_phi = np.sin(phi), np.cos(phi)
        self.cos_lam, self.sin_lam = np.cos(lam), np.sin(lam)
        self.lam_turns = lam / (2.0 * np.pi)
        self.pad = float(MAX_PAD)  # s either side of a step: see the module docstring
        self._x, self._wide, self._tmp, self._tmp2 = (np.zeros(m) for _ in range(4))
        self._bad, self._lit = np.zeros(m, dtype=bool), np.zeros(m, dtype=bool)
        self._day: np.datetime64 | None = None
        self.day_min, self.day_max = np.full(m, np.inf), np.full(m, -np.inf)

    def _take(self, row: np.ndarray) -> np.ndarray:
        return np.take(row, self.cells, out=self._x)

    def _cell(self, bad: np.ndarray) -> str:
        return self.locator.describe(int(self.cells[int(np.flatnonzero(bad)[0])]))

    def check(self, rows: dict[str, np.ndarray], info: StepInfo, label: str, first_step: bool) -> None:
        """Raise an InputError when a registered ``rsds`` or ``tas`` row (this rank's host cells) is implausible."""
        if not self.cells.size:
            return
        if "rsds" in rows and info.dt <= SECONDS_PER_DAY:
            self._shortwave(self._take(rows["rsds"]), info, label, first_step)
        if "tas" in rows and info.dt < SECONDS_PER_DAY:
            self._temperature_range(self._take(rows["tas"]), info, label)

    @staticmethod
    def _sun(when: np.datetime64) -> tuple[float, float, float, float]:
        """(sin, cos of the declination, S0 x eccentricity, hour angle at longitude 0 [rad]) at ``when``."""
        doy, hours = day_of_year_and_utc_hours(when)
        frac = doy + hours / 24.0
        dec = float(declination(frac))
        h0 = (float(hours) + float(equation_of_time_minutes(frac)) / 60.0 - 12.0) * np.pi / 12.0
        return float(np.sin(dec)), float(np.cos(dec)), SOLAR_CONSTANT * float(eccentricity_factor(doy)), h0

    def _cos_zenith(self, h: float, sin_dec: float, cos_dec: float, out: np.ndarray) -> np.ndarray:
        """cos(zenith) at the cells when longitude 0's hour angle is ``h``: sin phi sin d + cos phi cos d
        cos(lon + h), the last by angle addition; into ``out``."""
        np.multiply(self.cos_lam, np.cos(h), out=out)
        np.multiply(self.sin_lam, np.sin(h), out=self._tmp2)
        out -= self._tmp2
        out *= self.cos_phi
        out *= cos_dec
        np.multiply(self.sin_phi, sin_dec, out=self._tmp2)
        out += self._tmp2
        return out

    def _shortwave(self, sw: np.ndarray, info: StepInfo, label: str, first_step: bool) -> None:
        dt = float(info.dt)
        pad = min(self.pad, (SECONDS_PER_DAY - dt) / 2.0)
        window = dt + 2.0 * pad
        middle = info.start + np.timedelta64(int(dt / 2), "s")
        sin_d, cos_d, s0, h_mid = self._sun(middle)
        half = np.pi * window / SECONDS_PER_DAY  # half the window, in hour angle
        bound, noon, bad = self._wide, self._lit, self._bad
        turns = self._tmp
        # the highest cos(zenith) in the window: at local noon where the window holds it, else at its nearer end
        self._cos_zenith(h_mid - half, sin_d, cos_d, out=bound)
        np.maximum(bound, self._cos_zenith(h_mid + half, sin_d, cos_d, out=turns), out=bound)
        np.add(self.lam_turns, (h_mid - half) / (2.0 * np.pi), out=turns)  # the window's start, in turns
        np.negative(turns, out=turns)
        turns -= np.floor(turns, out=self._tmp2)  # turns from the window's start to the next local noon
        np.less_equal(turns, half / np.pi, out=noon)
        np.multiply(noon, 2.0, out=turns)  # cos(zenith) at local noon where the window holds it, else <= -1
        turns -= 2.0
        np.multiply(self.cos_phi, cos_d, out=self._tmp2)
        turns += self._tmp2
        np.multiply(self.sin_phi, sin_d, out=self._tmp2)
        turns += self._tmp2
        np.maximum(bound, turns, out=bound)
        np.maximum(bound, 0.0, out=bound)
        bound *= REL_MARGIN * s0
        bound += ABS_MARGIN
        with np.errstate(invalid="ignore"):
            np.greater(sw, bound, out=bad)
        if bad.any():
            j = int(np.flatnonzero(bad)[0])
            mean = self.toa.integral(info.start, dt, out=self._tmp2)[j] / dt
            raise InputError(
                f"forcing field 'rsds' at {label}: {self._cell(bad)} is {sw[j]:.6g} W m-2, above the insolation at "
                f"the top of the atmosphere there ({mean:.4g} W m-2 over the step; at most {bound[j]:.4g} with the "
                f"margins, at its highest from {pad / 3600:g} h before the step to {pad / 3600:g} h after it) at "
                f"{int(bad.sum())} cell(s): the shortwave belongs to another time of day (a time axis or its bounds "
                f"shifted by hours, a time zone ignored) or is in another unit")
        if first_step:
            return
        top, lit, ratio = self._cos_zenith(h_mid, sin_d, cos_d, out=self._wide), self._lit, self._tmp
        top *= s0  # top-of-atmosphere insolation at the step's middle
        np.greater(top, LIT, out=lit)
        np.isfinite(sw, out=bad)  # missing values (fill policy 'missing') are not judged
        lit &= bad
        n_lit = int(np.count_nonzero(lit))
        if n_lit < MIN_LIT:
            return
        ratio.fill(-np.inf)
        np.divide(sw, top, out=ratio, where=lit)
        brightest = float(ratio.max())
        if brightest < DARK_RATIO:
            j = int(np.flatnonzero(lit)[0])
            raise InputError(
                f"forcing field 'rsds' at {label}: all {n_lit} land cells of rank {self.locator.rank} in high sun "
                f"(top-of-atmosphere insolation above {LIT:g} W m-2 at the step's middle) receive less than "
                f"{DARK_RATIO:.0%} of it (at most {brightest:.3g}; e.g. {self._cell(lit)}: {sw[j]:.4g} W m-2 under "
                f"{top[j]:.4g} W m-2): no sky is that dark everywhere -- the values are likely MJ m-2 d-1 (11.6 "
                f"times smaller than W m-2) or another quantity labelled W m-2")

    def _temperature_range(self, tas: np.ndarray, info: StepInfo, label: str) -> None:
        if info.start.astype("datetime64[D]") != self._day:
            return  # the day's first step: nothing to compare with yet (commit starts the day)
        span, bad = self._tmp, self._bad
        with np.errstate(invalid="ignore"):
            np.fmax(self.day_max, tas, out=span)
            span -= np.fmin(self.day_min, tas, out=self._tmp2)
            np.greater(span, MAX_DAILY_RANGE_K, out=bad)
        if bad.any():
            j = int(np.flatnonzero(bad)[0])
            raise InputError(
                f"forcing field 'tas' at {label}: {self._cell(bad)} is {tas[j]:.5g} K, so that day's air temperature "
                f"spans {span[j]:.3g} K (between {self.day_min[j]:.5g} and {self.day_max[j]:.5g} K before this step; "
                f"at {int(bad.sum())} cell(s)); no day on Earth spans more than ~35 K: the steps come from different "
                f"days or seasons (a time axis in the wrong units) or mix units")

    def commit(self, rows: dict[str, np.ndarray], info: StepInfo) -> None:
        """The step passed everywhere: carry the day's temperature extremes (a new day starts them again)."""
        if "tas" not in rows or not self.cells.size:
            return
        day = info.start.astype("datetime64[D]")
        if day != self._day:
            self._day = day
            self.day_min.fill(np.inf)
            self.day_max.fill(-np.inf)
        tas = self._take(rows["tas"])
        np.fmin(self.day_min, tas, out=self.day_min)
        np.fmax(self.day_max, tas, out=self.day_max)
