"""Model drivers accumulated over a model period from a host's coupling-step fields.

A host gives instantaneous or step-mean air temperature, humidity, pressure, shortwave and precipitation every
coupling step (30 min, 1 h, 3 h ...). TAM-RL was trained on period (monthly or daily) drivers: the mean of daily
minimum and maximum temperature, mean shortwave [MJ m-2 d-1], mean VPD [hPa] and precipitation [mm d-1]. This
module keeps running sums per cell so that at any step the drivers of the *partial* period so far are available
(the component predicts with them without committing the LSTM state) and at the period end the complete ones.

Which import makes which driver, and by which rule, is declared in :mod:`tamrl_coupler.vocabulary` (``sources``,
``aggregate``); this module implements each rule once. Imports a host does not send but that can be derived from
the ones it sends (``derived_from`` in the vocabulary: VPD from temperature, humidity and pressure; the step's
temperature from its extremes) are computed here too, by :class:`ImportDerivations`.

All arrays are preallocated; ``add`` works in place so the coupling loop allocates nothing per step.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from tamrl_coupler import vocabulary
from tamrl_coupler.errors import InputError
from tamrl_coupler.physics.humidity import vpd_from_dewpoint_hpa, vpd_from_relative_humidity_hpa, vpd_hpa, wind_speed
from tamrl_coupler.physics.units import driver_conversion
from tamrl_coupler.vocabulary import Aggregate


def _vpd_pa(f: dict[str, np.ndarray], out: np.ndarray, scratch: np.ndarray) -> None:
    vpd_hpa(f["tas"], f["huss"], f["ps"], scratch=scratch, out=out)
    out *= 100.0


def _vpd_dewpoint_pa(f: dict[str, np.ndarray], out: np.ndarray, scratch: np.ndarray) -> None:
    vpd_from_dewpoint_hpa(f["tas"], f["tdps"], scratch=scratch, out=out)
    out *= 100.0


def _vpd_relative_humidity_pa(f: dict[str, np.ndarray], out: np.ndarray, scratch: np.ndarray) -> None:
    vpd_from_relative_humidity_hpa(f["tas"], f["hurs"], scratch=scratch, out=out)
    out *= 100.0


def _wind_speed(f: dict[str, np.ndarray], out: np.ndarray, scratch: np.ndarray) -> None:
    wind_speed(f["uas"], f["vas"], scratch=scratch, out=out)


def _mid_temperature(f: dict[str, np.ndarray], out: np.ndarray, scratch: np.ndarray) -> None:
    np.add(f["tasmin"], f["tasmax"], out=out)
    out *= 0.5


Derivation = Callable[[dict[str, np.ndarray], np.ndarray, np.ndarray], None]
# import name -> {the imports it is computed from (one of the vocabulary's ``derivations()``): how} (canonical units)
DERIVATIONS: dict[str, dict[tuple[str, ...], Derivation]] = {
    "tas": {("tasmin", "tasmax"): _mid_temperature},  # the step's temperature from a period host's extremes
    "vpd": {("tas", "huss", "ps"): _vpd_pa, ("tas", "tdps"): _vpd_dewpoint_pa,
            ("tas", "hurs"): _vpd_relative_humidity_pa},
    "sfcWind": {("uas", "vas"): _wind_speed},
}


class ImportDerivations:
    """Computes, every step and in place, the imports a host did not register but that can be derived.

    ``fields`` (name -> this rank's model-cell row) is extended with preallocated rows for the derived imports, in
    dependency order (``tas`` from its extremes before ``vpd`` from ``tas``)."""

    def __init__(self, fields: dict[str, np.ndarray], n_cells: int):
        self.order: list[tuple[str, Derivation]] = []
        have = set(fields)
        for name in _derivation_order():
            if name in have:
                continue
            src = next((src for src in vocabulary.IMPORTS[name].derivations() if all(d in have for d in src)), None)
            if src is None:
                continue
            formula = DERIVATIONS.get(name, {}).get(src)
            if formula is None:
                raise InputError(f"import {name!r} is declared derivable from {src} but the physics has no formula "
                                 "for it (physics/drivers.py DERIVATIONS)")
            fields[name] = np.zeros(n_cells)
            have.add(name)
            self.order.append((name, formula))
        self.fields = fields
        self._scratch = np.zeros(n_cells)

    @property
    def derived(self) -> list[str]:
        """The imports computed here, in the order they are computed."""
        return [name for name, _ in self.order]

    def derive(self) -> None:
        for name, formula in self.order:
            formula(self.fields, self.fields[name], self._scratch)


def _derivation_order() -> list[str]:
    """Derivable imports, each after the imports it is derived from."""
    out: list[str] = []

    def visit(name: str) -> None:
        q = vocabulary.IMPORTS[name]
        for src in q.derivations():
            for d in src:
                visit(d)
        if q.derivations() and name not in out:
            out.append(name)

    for name in vocabulary.IMPORTS:
        visit(name)
    return out


class _Rule:
    """One driver's running state over the period (arrays named in restart files ``acc_<array>_<driver>``).

    ``nan_aware`` (fill policy 'missing'): NaN values are left out of the period's statistics, which are then over
    the valid values of each cell (the extra arrays in ``nan_arrays`` count them); a cell without any valid value
    in the period gives NaN, a missing driver for the model. Otherwise the rule is exactly the plain one."""

    arrays: tuple[str, ...] = ()
    nan_arrays: tuple[str, ...] = ()

    def __init__(self, driver: str, n: int, fields: set[str] | None, nan_aware: bool = False):
        q = vocabulary.DRIVERS[driver]
        self.driver = driver
        self.nan_aware = nan_aware
        present = q.sources if fields is None else [s for s in q.sources if s in fields]
        self.source = present[0] if present else None
        self.seen = False  # whether the source was ever given (an optional driver without one is NaN: missing)
        self.conv = driver_conversion(driver, self.source or q.sources[0])
        for a in self.all_arrays:
            setattr(self, a, np.zeros(n))
        self._valid = np.zeros(n, dtype=bool) if nan_aware else None

    @property
    def all_arrays(self) -> tuple[str, ...]:
        return self.arrays + (self.nan_arrays if self.nan_aware else ())

    def reset(self) -> None:
        for a in self.all_arrays:
            getattr(self, a).fill(0.0)


class MeanRule(_Rule):
    """Time mean over the period (seconds-weighted)."""

    arrays = ("sum",)
    nan_arrays = ("time",)  # seconds with a valid value, per cell

    def add(self, x: np.ndarray, dt: float, scratch: np.ndarray, ends_day: bool) -> None:
        np.multiply(x, dt, out=scratch)
        if self.nan_aware:
            np.isfinite(x, out=self._valid)
            np.add(self.sum, scratch, out=self.sum, where=self._valid)
            np.add(self.time, dt, out=self.time, where=self._valid)
        else:
            self.sum += scratch

    def valid_seconds(self, elapsed: float) -> np.ndarray | float:
        return self.time if self.nan_aware else elapsed

    def fill(self, col: np.ndarray, elapsed: float, n_days: int, open_day: bool) -> None:
        if self.nan_aware:
            col.fill(np.nan)
            with np.errstate(divide="ignore"):
                np.divide(self.conv.scale, self.time, out=col, where=self.time > 0)
            np.multiply(self.sum, col, out=col)
        else:
            np.multiply(self.sum, self.conv.scale / elapsed, out=col)
        if self.conv.offset != 0.0:
            col += self.conv.offset


class _DailyExtreme(_Rule):
    """Mean over days of each day's extreme. With ``nan_aware``, a day's extreme is over its valid values and a
    day without any is left out of the mean (never a NaN that would stay for the rest of the period)."""

    arrays = ("day", "sum")
    nan_arrays = ("days",)  # days with a valid extreme, per cell

    def __init__(self, driver: str, n: int, fields: set[str] | None, minimum: bool, nan_aware: bool = False):
        self.op = (np.fmin if minimum else np.fmax) if nan_aware else (np.minimum if minimum else np.maximum)
        self.start = np.inf if minimum else -np.inf
        super().__init__(driver, n, fields, nan_aware)
        self.day.fill(self.start)
        self._count = np.zeros(n) if nan_aware else None

    def reset(self) -> None:
        super().reset()
        self.day.fill(self.start)

    def add(self, x: np.ndarray, dt: float, scratch: np.ndarray, ends_day: bool) -> None:
        self.op(self.day, x, out=self.day)
        if ends_day:
            if self.nan_aware:
                np.isfinite(self.day, out=self._valid)
                np.add(self.sum, self.day, out=self.sum, where=self._valid)
                np.add(self.days, 1.0, out=self.days, where=self._valid)
            else:
                self.sum += self.day
            self.day.fill(self.start)

    def fill(self, col: np.ndarray, elapsed: float, n_days: int, open_day: bool) -> None:
        if self.nan_aware:
            count = self._count
            np.copyto(count, self.days)
            col[:] = self.sum
            if open_day:
                np.isfinite(self.day, out=self._valid)
                np.add(col, self.day, out=col, where=self._valid)
                np.add(count, 1.0, out=count, where=self._valid)
            np.copyto(col, np.nan, where=count == 0)
            np.divide(col, count, out=col, where=count > 0)
        else:
            if open_day:
                np.add(self.sum, self.day, out=col)
            else:
                col[:] = self.sum
            col /= n_days
        if self.conv.scale != 1.0:
            col *= self.conv.scale
        col += self.conv.offset


class _Last(_Rule):
    """The last value (a class); with ``nan_aware`` the last valid one (NaN, missing, until there is one)."""

    arrays = ("last",)

    def __init__(self, driver: str, n: int, fields: set[str] | None, nan_aware: bool = False):
        super().__init__(driver, n, fields, nan_aware)
        if nan_aware:
            self.last.fill(np.nan)

    def add(self, x: np.ndarray, dt: float, scratch: np.ndarray, ends_day: bool) -> None:
        if self.nan_aware:
            np.copyto(self.last, x, where=np.isfinite(x, out=self._valid))
        else:
            self.last[:] = x

    def reset(self) -> None:  # a class holds over period ends
        pass

    def fill(self, col: np.ndarray, elapsed: float, n_days: int, open_day: bool) -> None:
        col[:] = self.last


RULES: dict[Aggregate, Callable[[str, int, set[str] | None, bool], _Rule]] = {
    Aggregate.MEAN: MeanRule,
    Aggregate.DAILY_MIN: lambda d, n, f, nan: _DailyExtreme(d, n, f, minimum=True, nan_aware=nan),
    Aggregate.DAILY_MAX: lambda d, n, f, nan: _DailyExtreme(d, n, f, minimum=False, nan_aware=nan),
    Aggregate.LAST: _Last,
}

# names in restart formats 1 and 2 of the state now called (without the ``acc_`` prefix), and the factor from what
# they held then to what is held now (VPD was summed in hPa, it is now summed in the import's Pa)
_LEGACY_NAMES = {"sum_swdown": "sum_sw", "sum_precip": "sum_pr", "day_tmin": "day_min",
                 "day_tmax": "day_max", "last_igbp": "landcover", "has_igbp": "has_landcover"}
_LEGACY_FACTORS = {"sum_vpd": 100.0}


class DriverAccumulator:
    """Running per-cell sums over the current model period; see the module docstring.

    ``drivers``: the model's drivers in its input order. ``fields``: the imports available every step (registered
    or derived); each driver takes the first of its vocabulary ``sources`` among them (None: decided per step).
    ``nan_aware``: imports may hold NaN (missing values, fill policy 'missing'); see :class:`_Rule`."""

    def __init__(self, n_cells: int, drivers: list[str], fields: set[str] | None = None, nan_aware: bool = False):
        unknown = [d for d in drivers if d not in vocabulary.DRIVERS]
        if unknown:
            raise InputError(f"model drivers {unknown} cannot be made from coupling fields; "
                             f"known drivers: {sorted(vocabulary.DRIVERS)}")
        self.n = int(n_cells)
        self.drivers = list(drivers)
        self.nan_aware = nan_aware
        self.rules = [RULES[vocabulary.DRIVERS[d].aggregate](d, self.n, fields, nan_aware) for d in self.drivers]
        self._scratch = np.zeros(self.n)
        self.reset()

    def reset(self) -> None:
        """Start a new period (after its drivers were committed)."""
        for r in self.rules:
            r.reset()
        self.days_done = 0
        self.day_steps = 0
        self.elapsed = 0.0

    def running_sum_of(self, source: str) -> np.ndarray:
        """The period's running sum of ``source`` * dt (a mean rule's), e.g. shortwave for the GPP downscaling."""
        for r in self.rules:
            if isinstance(r, MeanRule) and r.source == source:
                return r.sum
        raise InputError(f"no model driver is the period mean of import {source!r}")

    @staticmethod
    def source_for(rule: _Rule, fields: dict[str, np.ndarray]) -> str | None:
        """The import ``rule``'s driver is made from this step: its source, else the first of the vocabulary's
        sources among ``fields`` (None: none given)."""
        src = rule.source
        if src is None or src not in fields:
            src = next((s for s in vocabulary.DRIVERS[rule.driver].sources if s in fields), None)
        return src

    def add(self, fields: dict[str, np.ndarray], dt: float, ends_day: bool) -> None:
        """Accumulate one coupling step of length ``dt`` seconds; ``ends_day`` closes the current day."""
        for r in self.rules:
            src = self.source_for(r, fields)
            if src is None:
                if vocabulary.DRIVERS[r.driver].required:
                    raise InputError(f"model driver '{r.driver}' needs one of the imports "
                                     f"{vocabulary.DRIVERS[r.driver].sources}; got {sorted(fields)}")
                continue  # an optional driver without its import: missing (NaN) for the model
            r.seen = True
            r.add(fields[src], dt, self._scratch, ends_day)
        self.elapsed += dt
        self.day_steps += 1
        if ends_day:
            self.days_done += 1
            self.day_steps = 0

    def fill(self, out: np.ndarray) -> np.ndarray:
        """Write the partial-period drivers, in the model's driver order, into ``out`` (n_cells, n_drivers)."""
        if self.elapsed <= 0.0:
            raise InputError("no coupling step has been accumulated in this period yet")
        open_day = self.day_steps > 0
        n_days = self.days_done + (1 if open_day else 0)
        for j, r in enumerate(self.rules):
            col = out[:, j]
            if r.seen:
                r.fill(col, self.elapsed, n_days, open_day)
            else:
                col.fill(np.nan)
        return out

    # restart support -------------------------------------------------------------------------------------------
    @staticmethod
    def _key(r: _Rule, array: str) -> str:
        return f"{array}_{r.driver}"

    def state_arrays(self) -> dict[str, np.ndarray]:
        return {f"acc_{self._key(r, a)}": getattr(r, a) for r in self.rules for a in r.all_arrays}

    def state_scalars(self) -> dict[str, float]:
        d = {"acc_days_done": float(self.days_done), "acc_day_steps": float(self.day_steps),
             "acc_elapsed": float(self.elapsed)}
        d.update({f"acc_has_{r.driver}": float(r.seen) for r in self.rules})
        return d

    def load_state(self, arrays: dict[str, np.ndarray], scalars: dict[str, float]) -> None:
        """From :meth:`state_arrays` / :meth:`state_scalars` (``acc_`` prefix), or a format 1-2 restart's names."""
        legacy = "acc_day_min" in arrays  # a format 1-2 restart (it always held the daily minimum so named)

        def get(table: dict, key: str, default=None):
            for k in (key, _LEGACY_NAMES.get(key)):
                if k is not None and f"acc_{k}" in table:
                    return table[f"acc_{k}"]
            if default is None:
                raise InputError(f"restart: accumulator state 'acc_{key}' is missing")
            return default

        for r in self.rules:
            for a in r.arrays:
                key = self._key(r, a)
                getattr(r, a)[:] = get(arrays, key) * (_LEGACY_FACTORS.get(key, 1.0) if legacy else 1.0)
            r.seen = bool(get(scalars, f"has_{r.driver}", 1.0))  # formats 1-2 always had the required drivers
        self.days_done = int(scalars["acc_days_done"])
        self.day_steps = int(scalars["acc_day_steps"])
        self.elapsed = float(scalars["acc_elapsed"])
        # the counts of valid values, when the restart was written without them: every value was valid
        defaults = {"time": self.elapsed, "days": float(self.days_done)}
        for r in self.rules:
            for a in (r.nan_arrays if r.nan_aware else ()):
                getattr(r, a)[:] = arrays.get(f"acc_{self._key(r, a)}", defaults[a])
