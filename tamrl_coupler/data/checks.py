"""Range checks of site data at the edge, where a column still has its file, site and column name.

Why: site data that is read without a check turns a unit or sentinel mistake into a silent wrong result -- ``TA_F``
in K made GPP 3.3 times larger, ``-9999.5`` and ``-6999`` sentinels were read as temperatures, a site at latitude
200 was scored. Every value of every driver and target column, and every field of a site table, is checked against
a physical range here; a failure is an InputError naming the file, the site, the column, the first bad value and
what it usually means. Missing values (NaN, the readers' ``-9999``) pass: they are gaps, never numbers.
"""

from __future__ import annotations

import math

import numpy as np

from tamrl_coupler.errors import InputError
from tamrl_coupler.vocabulary import IGBP_CLASSES

# column (FLUXNET name, or the driver/target name in FluxVal files and FluxDatasets) -> (min, max, unit, hint)
_T_HINT = "values near 273 or above mean K where degC is expected; -6999 or -9999.5 are sentinels, not data"
RANGES: dict[str, tuple[float, float, str, str]] = {
    "TA_F": (-80.0, 60.0, "degC", _T_HINT),
    "SW_IN_F": (-1.0, 1400.0, "W m-2", "negative shortwave is a sign or offset error; above 1400 another unit"),
    "SW_IN_POT": (-1.0, 1400.0, "W m-2", "another unit"),
    "VPD_F": (-1e-6, 120.0, "hPa", "negative VPD is an error; values above 120 mean Pa where hPa is expected"),
    "P_F": (-1e-6, 2000.0, "mm per record", "values above 2000 mean another unit (e.g. um or 1000 x mm)"),
    "LW_IN_F": (40.0, 750.0, "W m-2", "another unit"),
    "PA_F": (30.0, 110.0, "kPa", "values near 1000 mean hPa where kPa is expected"),
    "WS_F": (0.0, 75.0, "m s-1", "another unit"),
    "CO2_F_MDS": (100.0, 5000.0, "ppm", "values below 1 mean mol mol-1"),
    "tmin": (-80.0, 60.0, "degC", _T_HINT),
    "tmax": (-80.0, 60.0, "degC", _T_HINT),
    "tmean": (-80.0, 60.0, "degC", _T_HINT),
    "swdown": (-0.1, 50.0, "MJ m-2 d-1", "negative shortwave is an error; above 50 means W m-2 given as MJ m-2 d-1"),
    "vpd": (-1e-6, 120.0, "hPa", "negative VPD is an error; values above 120 mean Pa where hPa is expected"),
    "precip": (-1e-6, 2000.0, "mm d-1", "values above 2000 mean another unit (e.g. 1000 x mm d-1)"),
    "lwdown": (40.0, 750.0, "W m-2", "another unit"),
    "pressure": (30.0, 110.0, "kPa", "values near 1000 mean hPa where kPa is expected"),
    "wind": (0.0, 75.0, "m s-1", "another unit"),
    "co2": (100.0, 5000.0, "ppm", "values below 1 mean mol mol-1"),
    "lai": (0.0, 20.0, "m2 m-2", "another unit or a scale factor not applied"),
    "GPP_NT_VUT_REF": (-30.0, 60.0, "gC m-2 d-1", "umol m-2 s-1 where gC m-2 d-1 is expected, or a sentinel"),
    "RECO_NT_VUT_REF": (-30.0, 60.0, "gC m-2 d-1", "umol m-2 s-1 where gC m-2 d-1 is expected, or a sentinel"),
    "NEE_VUT_REF": (-60.0, 60.0, "gC m-2 d-1", "umol m-2 s-1 where gC m-2 d-1 is expected, or a sentinel"),
    "gpp": (-30.0, 60.0, "gC m-2 d-1", "another unit, or a sentinel"),
    "reco": (-30.0, 60.0, "gC m-2 d-1", "another unit, or a sentinel"),
    "nee": (-60.0, 60.0, "gC m-2 d-1", "another unit, or a sentinel"),
}

# site tables: field -> (min, max, hint)
SITE_RANGES: dict[str, tuple[float, float, str]] = {
    "lat": (-90.0, 90.0, "degrees north"),
    "lon": (-180.0, 360.0, "degrees east"),
    "elevation": (-500.0, 9000.0, "m above sea level (feet or cm give larger numbers)"),
}

# rough extents (lat_min, lat_max, lon_min, lon_max; degrees, 1 degree of margin added) of the countries whose code
# starts FLUXNET site IDs: a site outside its country's box has its latitude and longitude swapped or wrong
_COUNTRIES: dict[str, tuple[float, float, float, float]] = {
    "US": (18, 72, -180, -65), "CA": (41, 84, -141, -52), "MX": (14, 33, -119, -86), "BR": (-34, 6, -74, -34),
    "AR": (-56, -21, -74, -53), "PA": (7, 10, -83, -77), "GF": (2, 6, -55, -51), "IT": (35, 48, 6, 19),
    "DE": (47, 55.1, 5.8, 15.1), "FR": (41, 51.2, -5.2, 9.6), "ES": (27.5, 43.8, -18.2, 4.4),
    "PT": (36.9, 42.2, -9.6, -6.2), "BE": (49.4, 51.6, 2.5, 6.5), "NL": (50.7, 53.6, 3.3, 7.3),
    "CH": (45.8, 47.9, 5.9, 10.5), "AT": (46.3, 49.1, 9.5, 17.2), "CZ": (48.5, 51.1, 12, 19),
    "PL": (49, 54.9, 14.1, 24.2), "HU": (45.7, 48.6, 16.1, 22.9), "DK": (54.5, 57.8, 8, 15.2),
    "SE": (55, 69.1, 10.9, 24.2), "NO": (57.9, 71.2, 4.6, 31.2), "FI": (59.5, 70.2, 20, 31.6),
    "GB": (49.8, 61, -8.7, 2), "UK": (49.8, 61, -8.7, 2), "IE": (51.4, 55.4, -10.5, -6), "RU": (41, 82, 19, 180),
    "GL": (59.7, 83.7, -73.1, -11.3), "SJ": (76.4, 80.9, 10, 34), "CN": (18, 54, 73, 135), "JP": (24, 45.6, 122.9, 146),
    "KR": (33, 38.7, 124.6, 131), "MY": (0.8, 7.4, 99.6, 119.3), "ID": (-11, 6, 95, 141), "AU": (-44, -9, 112, 154),
    "SN": (12.3, 16.7, -17.6, -11.3), "CG": (-5.1, 3.8, 11, 18.7), "GH": (4.7, 11.2, -3.3, 1.2),
    "ZA": (-35, -22, 16.4, 33), "ZM": (-18, -8.2, 22, 33.7), "IL": (29.5, 33.4, 34.2, 35.9),
}


def check_values(values: np.ndarray, column: str, source: str, sites: list[str] | np.ndarray | str) -> None:
    """``values`` of ``column`` (1-D for one site, or (site, time)) within RANGES[column]; NaN passes; an
    InputError names ``source`` (the file), the site, the column, the first bad value and its hint. A column
    without a range passes."""
    if column not in RANGES:
        return
    lo, hi, unit, hint = RANGES[column]
    v = np.atleast_2d(np.asarray(values, dtype=np.float64))
    with np.errstate(invalid="ignore"):
        bad = np.isinf(v) | (v < lo) | (v > hi)
    if not bad.any():
        return
    s, t = (int(i[0]) for i in np.nonzero(bad))
    site = sites if isinstance(sites, str) else str(np.asarray(sites)[s])
    raise InputError(f"{source}: site {site}, column {column}: value {v[s, t]:g} (row {t + 1} of the site's data; "
                     f"{int(bad.sum())} values like it) is outside [{lo:g}, {hi:g}] {unit}: {hint}")


def check_site(site: str, fields: dict[str, object], source: str) -> None:
    """One site table row: lat, lon and elevation within SITE_RANGES (NaN elevation passes: unknown), the position
    inside the site's country (from its FLUXNET ID) and the land-cover code an IGBP class (or empty: unknown)."""
    for name, (lo, hi, what) in SITE_RANGES.items():
        if name not in fields:
            continue
        value = float(fields[name])  # type: ignore[arg-type]
        if math.isnan(value):  # unknown: whoever needs it says so
            continue
        if not lo <= value <= hi:
            raise InputError(f"{source}: site {site}, column {name}: {value:g} is outside [{lo:g}, {hi:g}] ({what})")
    lat, lon = float(fields.get("lat", math.nan)), float(fields.get("lon", math.nan))  # type: ignore[arg-type]
    box = _COUNTRIES.get(site[:2].upper()) if len(site) > 2 and site[2] == "-" else None
    if box is not None and math.isfinite(lat) and math.isfinite(lon):
        lon180 = (lon + 180.0) % 360.0 - 180.0
        inside = box[0] - 1 <= lat <= box[1] + 1 and box[2] - 1 <= lon180 <= box[3] + 1
        if not inside:
            swapped = box[0] - 1 <= lon180 <= box[1] + 1 and box[2] - 1 <= lat <= box[3] + 1
            raise InputError(f"{source}: site {site}: lat {lat:g}, lon {lon:g} is outside {site[:2]} (its FLUXNET ID's "
                             f"country){': latitude and longitude are swapped' if swapped else ''}; fix the position")
    code = str(fields.get("igbp", "")).strip()
    if code and code.upper() not in IGBP_CLASSES:
        raise InputError(f"{source}: site {site}, column IGBP: {code!r} is not an IGBP class (expected one of "
                         f"{', '.join(IGBP_CLASSES)}, or empty for unknown)")
