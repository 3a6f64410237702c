"""Model drivers accumulated over a model period from a host's coupling-step fields.

A host gives instantaneous or step-mean air temperature, humidity, pressure, shortwave and precipitation every
coupling step (30 min, 1 h, 3 h ...). TAM-RL was trained on period (monthly or daily) drivers: the mean of daily
minimum and maximum temperature, mean shortwave [MJ m-2 d-1], mean VPD [hPa] and precipitation [mm d-1]. This
module keeps running sums per cell so that at any step the drivers of the *partial* period so far are available
(the component predicts with them without committing the LSTM state) and at the period end the complete ones.

All arrays are preallocated; ``add`` works in place so the coupling loop allocates nothing per step.
"""

from __future__ import annotations

import numpy as np

from tamrl_coupler.errors import InputError
from tamrl_coupler.physics.units import SECONDS_PER_DAY

REQUIRED_STEP_FIELDS = ("tas", "huss", "ps", "rsds", "pr")  # or tasmin+tasmax for tas, vpd for huss+ps
OPTIONAL_STEP_FIELDS = ("rlds", "sfcWind", "co2", "lai", "landcover")

# model driver name -> how the accumulator produces it
DRIVER_SOURCES = {
    "tmin": "mean of daily minimum of tas [degC]",
    "tmax": "mean of daily maximum of tas [degC]",
    "swdown": "mean of rsds [MJ m-2 d-1]",
    "vpd": "mean of VPD from tas, huss, ps [hPa]",
    "precip": "mean of pr [mm d-1]",
    "co2": "mean of co2 [ppm]",
    "lai": "mean of lai [m2 m-2]",
    "igbp": "landcover class (last value)",
    "landcover": "landcover class (last value)",
}


def saturation_vapour_pressure_hpa(t_celsius: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """Magnus formula over water (Alduchov & Eskridge 1996), hPa."""
    out = np.empty_like(t_celsius) if out is None else out
    np.add(t_celsius, 243.04, out=out)
    np.divide(t_celsius, out, out=out)
    out *= 17.625
    np.exp(out, out=out)
    out *= 6.1094
    return out


def vapour_pressure_hpa(huss: np.ndarray, ps_pa: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """Actual vapour pressure from specific humidity and pressure: e = q p / (0.622 + 0.378 q), hPa."""
    out = np.empty_like(huss) if out is None else out
    np.multiply(huss, 0.378, out=out)
    out += 0.622
    np.divide(huss, out, out=out)
    out *= ps_pa
    out *= 0.01
    return out


def vpd_hpa(tas_k: np.ndarray, huss: np.ndarray, ps_pa: np.ndarray, scratch: np.ndarray | None = None,
            out: np.ndarray | None = None) -> np.ndarray:
    """Vapour pressure deficit [hPa] from temperature [K], specific humidity [kg kg-1] and pressure [Pa]; >= 0."""
    out = np.empty_like(tas_k) if out is None else out
    scratch = np.empty_like(tas_k) if scratch is None else scratch
    np.subtract(tas_k, 273.15, out=scratch)
    saturation_vapour_pressure_hpa(scratch, out=out)
    vapour_pressure_hpa(huss, ps_pa, out=scratch)
    out -= scratch
    np.maximum(out, 0.0, out=out)
    return out


class DriverAccumulator:
    """Running per-cell sums over the current model period; see the module docstring."""

    STATE_ARRAYS = ("day_min", "day_max", "sum_tmin", "sum_tmax", "sum_sw", "sum_pr", "sum_vpd", "sum_co2",
                    "sum_lai", "landcover")
    STATE_SCALARS = ("days_done", "day_steps", "elapsed")

    def __init__(self, n_cells: int, drivers: list[str]):
        unknown = [d for d in drivers if d not in DRIVER_SOURCES]
        if unknown:
            raise InputError(f"model drivers {unknown} cannot be made from coupling fields; "
                             f"known drivers: {sorted(DRIVER_SOURCES)}")
        self.n = int(n_cells)
        self.drivers = list(drivers)
        for name in self.STATE_ARRAYS:
            setattr(self, name, np.zeros(self.n))
        self._scratch = np.zeros(self.n)
        self._scratch2 = np.zeros(self.n)
        self.has_co2 = False
        self.has_lai = False
        self.has_landcover = False
        self.reset()

    def reset(self) -> None:
        """Start a new period (after its drivers were committed)."""
        for name in ("sum_tmin", "sum_tmax", "sum_sw", "sum_pr", "sum_vpd", "sum_co2", "sum_lai"):
            getattr(self, name).fill(0.0)
        self.day_min.fill(np.inf)
        self.day_max.fill(-np.inf)
        self.days_done = 0
        self.day_steps = 0
        self.elapsed = 0.0

    def add(self, fields: dict[str, np.ndarray], dt: float, ends_day: bool) -> None:
        """Accumulate one coupling step of length ``dt`` seconds; ``ends_day`` closes the current day."""
        if "tasmin" in fields and "tasmax" in fields:  # a host giving the step's extremes itself
            np.fmin(self.day_min, fields["tasmin"], out=self.day_min)
            np.fmax(self.day_max, fields["tasmax"], out=self.day_max)
            self._nan_where_missing(self.day_min, fields["tasmin"])
            self._nan_where_missing(self.day_max, fields["tasmax"])
        else:
            tas = fields["tas"]
            np.minimum(self.day_min, tas, out=self.day_min)
            np.maximum(self.day_max, tas, out=self.day_max)
        s = self._scratch
        np.multiply(fields["rsds"], dt, out=s)
        self.sum_sw += s
        np.multiply(fields["pr"], dt, out=s)
        self.sum_pr += s
        if "vpd" in fields:
            np.multiply(fields["vpd"], 0.01 * dt, out=s)  # Pa -> hPa
        else:
            vpd_hpa(fields["tas"], fields["huss"], fields["ps"], scratch=self._scratch2, out=s)
            s *= dt
        self.sum_vpd += s
        co2 = fields.get("co2")
        if co2 is not None:
            self.has_co2 = True
            np.multiply(co2, dt, out=s)
            self.sum_co2 += s
        lai = fields.get("lai")
        if lai is not None:
            self.has_lai = True
            np.multiply(lai, dt, out=s)
            self.sum_lai += s
        lc = fields.get("landcover")
        if lc is not None:
            self.has_landcover = True
            self.landcover[:] = lc
        self.elapsed += dt
        self.day_steps += 1
        if ends_day:
            self.sum_tmin += self.day_min
            self.sum_tmax += self.day_max
            self.day_min.fill(np.inf)
            self.day_max.fill(-np.inf)
            self.days_done += 1
            self.day_steps = 0

    @staticmethod
    def _nan_where_missing(acc: np.ndarray, x: np.ndarray) -> None:
        """fmin/fmax skip NaN; a missing extreme must stay missing (the model masks it), not become +-inf."""
        if np.isnan(x).any():
            acc[np.isnan(x)] = np.nan

    def fill(self, out: np.ndarray) -> np.ndarray:
        """Write the partial-period drivers, in the model's driver order, into ``out`` (n_cells, n_drivers)."""
        if self.elapsed <= 0.0:
            raise InputError("no coupling step has been accumulated in this period yet")
        open_day = 1 if self.day_steps > 0 else 0
        n_days = self.days_done + open_day
        for j, name in enumerate(self.drivers):
            col = out[:, j]
            if name in ("tmin", "tmax"):
                total, current = (self.sum_tmin, self.day_min) if name == "tmin" else (self.sum_tmax, self.day_max)
                if open_day:
                    np.add(total, current, out=col)
                else:
                    col[:] = total
                col /= n_days
                col -= 273.15
            elif name == "swdown":
                np.multiply(self.sum_sw, SECONDS_PER_DAY * 1e-6 / self.elapsed, out=col)
            elif name == "precip":
                np.multiply(self.sum_pr, SECONDS_PER_DAY / self.elapsed, out=col)
            elif name == "vpd":
                np.multiply(self.sum_vpd, 1.0 / self.elapsed, out=col)
            elif name == "co2":
                if self.has_co2:
                    np.multiply(self.sum_co2, 1.0 / self.elapsed, out=col)
                else:
                    col.fill(np.nan)
            elif name == "lai":
                if self.has_lai:
                    np.multiply(self.sum_lai, 1.0 / self.elapsed, out=col)
                else:
                    col.fill(np.nan)
            elif name in ("igbp", "landcover"):
                col[:] = self.landcover if self.has_landcover else np.nan
        return out

    # restart support -------------------------------------------------------------------------------------------
    def state_arrays(self) -> dict[str, np.ndarray]:
        return {f"acc_{k}": getattr(self, k) for k in self.STATE_ARRAYS}

    def state_scalars(self) -> dict[str, float]:
        d = {f"acc_{k}": float(getattr(self, k)) for k in self.STATE_SCALARS}
        d.update(acc_has_co2=float(self.has_co2), acc_has_lai=float(self.has_lai),
                 acc_has_landcover=float(self.has_landcover))
        return d

    def load_state(self, arrays: dict[str, np.ndarray], scalars: dict[str, float]) -> None:
        for k in self.STATE_ARRAYS:
            getattr(self, k)[:] = arrays[f"acc_{k}"]
        self.days_done = int(scalars["acc_days_done"])
        self.day_steps = int(scalars["acc_day_steps"])
        self.elapsed = float(scalars["acc_elapsed"])
        self.has_co2 = bool(scalars["acc_has_co2"])
        self.has_lai = bool(scalars["acc_has_lai"])
        self.has_landcover = bool(scalars["acc_has_landcover"])
