"""Humidity and wind as the model wants them (vapour pressure deficit, wind speed) from what forcing files carry:
specific humidity and pressure (CMIP6 huss/ps, CRU-JRA spfh/pres, GLDAS), the dew point (ERA5 d2m), relative
humidity (CMIP6 hurs), wind components (ERA5 u10/v10, CMIP6 uas/vas, CRU-JRA ugrd/vgrd).

One saturation formula for all of them, Magnus over water (Alduchov & Eskridge 1996), so that VPD from the dew
point and VPD from the specific humidity of the same air agree. Every function works in place into ``out`` (and
``scratch``) so the coupling loop allocates nothing; negative deficits (supersaturation, rounding) become 0.
"""

from __future__ import annotations

import numpy as np

from tamrl_coupler.constants import ZERO_CELSIUS


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
    np.subtract(tas_k, ZERO_CELSIUS, out=scratch)
    saturation_vapour_pressure_hpa(scratch, out=out)
    vapour_pressure_hpa(huss, ps_pa, out=scratch)
    out -= scratch
    np.maximum(out, 0.0, out=out)
    return out


def vpd_from_dewpoint_hpa(tas_k: np.ndarray, tdps_k: np.ndarray, scratch: np.ndarray | None = None,
                          out: np.ndarray | None = None) -> np.ndarray:
    """Vapour pressure deficit [hPa] from temperature and dew point [K]: e_s(T) - e_s(T_d) (the actual vapour
    pressure is the saturation pressure at the dew point); >= 0."""
    out = np.empty_like(tas_k) if out is None else out
    scratch = np.empty_like(tas_k) if scratch is None else scratch
    np.subtract(tdps_k, ZERO_CELSIUS, out=scratch)
    saturation_vapour_pressure_hpa(scratch, out=out)  # the actual vapour pressure
    np.subtract(tas_k, ZERO_CELSIUS, out=scratch)
    _saturation_in_place(scratch)
    np.subtract(scratch, out, out=out)
    np.maximum(out, 0.0, out=out)
    return out


def _saturation_in_place(t: np.ndarray) -> np.ndarray:
    """:func:`saturation_vapour_pressure_hpa` overwriting its argument (t / (t + c) written as 1 - c / (t + c))."""
    t += 243.04
    np.divide(243.04, t, out=t)
    np.subtract(1.0, t, out=t)
    t *= 17.625
    np.exp(t, out=t)
    t *= 6.1094
    return t


def vpd_from_relative_humidity_hpa(tas_k: np.ndarray, hurs_percent: np.ndarray, scratch: np.ndarray | None = None,
                                   out: np.ndarray | None = None) -> np.ndarray:
    """Vapour pressure deficit [hPa] from temperature [K] and relative humidity over water [%]:
    e_s(T) (1 - RH / 100); >= 0 (RH above 100 % gives 0)."""
    out = np.empty_like(tas_k) if out is None else out
    scratch = np.empty_like(tas_k) if scratch is None else scratch
    np.subtract(tas_k, ZERO_CELSIUS, out=scratch)
    saturation_vapour_pressure_hpa(scratch, out=out)
    np.multiply(hurs_percent, -0.01, out=scratch)
    scratch += 1.0
    out *= scratch
    np.maximum(out, 0.0, out=out)
    return out


def wind_speed(uas: np.ndarray, vas: np.ndarray, scratch: np.ndarray | None = None,
               out: np.ndarray | None = None) -> np.ndarray:
    """Wind speed [m s-1] from its eastward and northward components (the speed of the instantaneous wind)."""
    out = np.empty_like(uas) if out is None else out
    np.hypot(uas, vas, out=out)
    return out
