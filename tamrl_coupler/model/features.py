"""Drivers, normalisation and the explicit missing-value encoding shared by TAM-RL and the LSTM baseline.

Every continuous driver becomes two features: its standardised value (0 where missing) and a 0/1 missing
indicator, so that the network *knows* a value is absent instead of reading a silent zero. The land-cover class
becomes a one-hot vector plus its own missing indicator.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from tamrl_coupler import vocabulary
from tamrl_coupler.errors import CheckpointError
from tamrl_coupler.kernels.features import TOA_SCALE

# log1p before standardising: precipitation is heavily skewed (a modelling choice, written into every checkpoint).
TRANSFORMS = {"precip": "log1p"}


@dataclass(frozen=True)
class Driver:
    """One input column of the model."""

    name: str
    units: str
    required: bool

    def to_dict(self) -> dict:
        return {"name": self.name, "units": self.units, "required": self.required}


def default_drivers(optional: tuple[str, ...] | None = None, period: str = "monthly") -> list[Driver]:
    """The vocabulary's required drivers of ``period``'s models, then ``optional`` (default: every optional driver
    of that period)."""
    optional = vocabulary.optional_drivers(period) if optional is None else optional
    units = {n: q.units for n, q in vocabulary.DRIVERS.items()}
    return [Driver(n, units[n], True) for n in vocabulary.required_drivers(period)] + [
        Driver(n, units[n], False) for n in optional
    ]


class FeatureEncoder:
    """Physical drivers (..., D) with NaN -> network features (..., F); vectorised, no per-call allocation of state."""

    def __init__(self, drivers: list[Driver], mean: np.ndarray, std: np.ndarray):
        self.drivers = list(drivers)
        self.names = [d.name for d in drivers]
        self.mean = np.asarray(mean, dtype=np.float32)
        self.std = np.asarray(std, dtype=np.float32)
        n = len(drivers)
        if self.mean.shape != (n,) or self.std.shape != (n,):
            raise CheckpointError(f"normalisation statistics have shapes {self.mean.shape}/{self.std.shape}, "
                                  f"expected ({n},) for drivers {self.names}")
        categorical = vocabulary.categorical_drivers()
        self.cont_idx = [i for i, d in enumerate(self.names) if d not in categorical]
        self.cat_idx = [(i, categorical[d]) for i, d in enumerate(self.names) if d in categorical]
        self.log_idx = [i for i, d in enumerate(self.names) if TRANSFORMS.get(d) == "log1p"]
        self.n_features = 2 * len(self.cont_idx) + sum(k + 1 for _, k in self.cat_idx)
        self._tensors: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}

    @classmethod
    def fit(cls, drivers: list[Driver], x: np.ndarray) -> FeatureEncoder:
        """Statistics from training data x (..., D), ignoring NaN; categorical columns keep mean 0, std 1."""
        flat = np.asarray(x, dtype=np.float64).reshape(-1, len(drivers))
        mean = np.zeros(len(drivers))
        std = np.ones(len(drivers))
        categorical = vocabulary.categorical_drivers()
        for i, d in enumerate(drivers):
            if d.name in categorical:
                continue
            col = flat[:, i]
            col = col[np.isfinite(col)]
            if d.name in TRANSFORMS:
                col = np.log1p(np.maximum(col, 0.0))
            if col.size:
                mean[i] = col.mean()
                std[i] = max(col.std(), 1e-6)
        return cls(drivers, mean, std)

    def _stats(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        key = str(device)
        if key not in self._tensors:
            self._tensors[key] = (torch.as_tensor(self.mean, device=device), torch.as_tensor(self.std, device=device))
        return self._tensors[key]

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """x (..., D) float physical units, NaN = missing -> (..., F) float32 features."""
        x = x.to(torch.float32)
        mean, std = self._stats(x.device)
        missing = torch.isnan(x)
        xt = x
        if self.log_idx:
            xt = x.clone()
            xt[..., self.log_idx] = torch.log1p(torch.clamp(x[..., self.log_idx], min=0.0))
        z = torch.where(missing, torch.zeros((), device=x.device), (xt - mean) / std)
        parts = [z[..., self.cont_idx], missing[..., self.cont_idx].to(torch.float32)]
        for i, k in self.cat_idx:
            col = x[..., i]
            miss = torch.isnan(col) | (col < 0) | (col >= k)
            idx = torch.where(miss, torch.zeros((), dtype=col.dtype, device=x.device), col).long()
            onehot = torch.nn.functional.one_hot(idx, k).to(torch.float32) * (~miss).unsqueeze(-1)
            parts += [onehot, miss.unsqueeze(-1).to(torch.float32)]
        return torch.cat(parts, dim=-1)


# ---------------------------------------------------------------------------------------------------------------
# Derived inputs: computed by the model itself from what the state carries (the calendar period and the cell's
# latitude), so that a host never has to send them as drivers.
# (DERIVED_INPUTS, name -> number of features, and TOA_SCALE are defined with the kernels that compute them in
# preallocated buffers, kernels/features.py, the lower layer; derived_features below is the reference arithmetic)
LAT_INPUTS = ("lat", "toa")  # derived inputs computed from the cell's latitude
PERIOD_UNITS = {"monthly": "M", "daily": "D"}


def period_index(when: np.datetime64 | np.ndarray | str, period: str) -> np.ndarray:
    """datetime64 value(s) -> integer period index (months or days since 1970-01), the state's calendar."""
    unit = PERIOD_UNITS.get(period)
    if unit is None:
        raise CheckpointError(f"period {period!r}: derived inputs need one of {sorted(PERIOD_UNITS)}")
    return np.asarray(when, dtype="datetime64[ns]").astype(f"datetime64[{unit}]").astype(np.int64)


def _day_of_year(pidx: torch.Tensor, period: str) -> torch.Tensor:
    """Mid-period day of the year (float) from the integer period index."""
    if period == "monthly":
        return (torch.remainder(pidx, 12).to(torch.float32) + 0.5) * (365.25 / 12.0)
    days = pidx.to(torch.float64) + 0.5  # days since 1970-01-01; 1970-01-01 is day 0 of a year
    return torch.remainder(days, 365.2425).to(torch.float32)


def _daily_toa(doy: torch.Tensor, lat: torch.Tensor) -> torch.Tensor:
    """Daily-mean top-of-atmosphere insolation [W m-2] (physics/solar.py's formulas, in torch; doy 0-based)."""
    from tamrl_coupler.physics.solar import SOLAR_CONSTANT

    g = doy * (2.0 * np.pi / 365.0)
    dec = (0.006918 - 0.399912 * torch.cos(g) + 0.070257 * torch.sin(g) - 0.006758 * torch.cos(2 * g)
           + 0.000907 * torch.sin(2 * g) - 0.002697 * torch.cos(3 * g) + 0.00148 * torch.sin(3 * g))
    ecc = (1.000110 + 0.034221 * torch.cos(g) + 0.001280 * torch.sin(g) + 0.000719 * torch.cos(2 * g)
           + 0.000077 * torch.sin(2 * g))
    phi = torch.deg2rad(lat)
    h0 = torch.arccos(torch.clamp(-torch.tan(phi) * torch.tan(dec), -1.0, 1.0))
    q = SOLAR_CONSTANT * ecc / np.pi * (h0 * torch.sin(phi) * torch.sin(dec) + torch.cos(phi) * torch.cos(dec)
                                        * torch.sin(h0))
    return torch.clamp(q, min=0.0)


def derived_features(names: list[str], pidx: torch.Tensor, lat: torch.Tensor, period: str) -> torch.Tensor:
    """pidx (...) int64 period index, lat (...) degrees north -> (..., K) float32 features.

    month: sin/cos of the mid-period day of the year (the season XGBoost's features also get);
    lat: latitude / 90 (hemisphere and climate zone) and the astronomical day length / 24 h at mid-period;
    toa: daily-mean top-of-atmosphere insolation / 400 W m-2 at mid-period (the light a clear sky could give,
    FLUXNET's SW_IN_POT: with the measured shortwave it tells cloudiness).
    """
    parts = []
    doy, lat = torch.broadcast_tensors(_day_of_year(pidx, period), lat.to(torch.float32))
    if "month" in names:
        ang = doy * (2.0 * np.pi / 365.25)
        parts += [torch.sin(ang), torch.cos(ang)]
    if "lat" in names:
        decl = -0.40928 * torch.cos((doy + 10.0) * (2.0 * np.pi / 365.25))  # solar declination, rad
        cosw = torch.clamp(-torch.tan(torch.deg2rad(lat)) * torch.tan(decl), -1.0, 1.0)
        parts += [lat / 90.0, torch.arccos(cosw) / np.pi]  # day length / 24 h = hour angle at sunset / pi
    if "toa" in names:
        parts.append(_daily_toa(doy, lat) / TOA_SCALE)
    if not parts:
        return torch.zeros((*doy.shape, 0), dtype=torch.float32, device=pidx.device)
    return torch.stack(parts, dim=-1)
