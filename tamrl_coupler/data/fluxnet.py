"""Readers for FLUXNET2015 (FULLSET/SUBSET; HH, HR, DD, MM) and AmeriFlux BASE CSV files -> :class:`FluxDataset`.

Conversions at the edge:
- ``-9999`` -> NaN; half-hourly NEE with QC flag 3 (poor gap-filling) -> NaN.
- SW_IN W m-2 (period mean) -> MJ m-2 d-1 (x 0.0864); CO2 fluxes umol m-2 s-1 -> gC m-2 d-1 (x 1.0377504);
  P mm per record -> mm d-1; DD/MM fluxes are already gC m-2 d-1.
- Targets: GPP_NT_VUT_REF and NEE_VUT_REF (FLUXNET: NEE = Reco - GPP); Reco = NEE + GPP exactly (as FluxVal does;
  RECO_NT_VUT_REF equals it to the file's rounding) and the product's NEE = GPP - Reco.
- tmin / tmax: HH/HR files give the true daily minimum and maximum of TA_F. DD and MM files only hold the daily
  mean, so the monthly mean diurnal range is *estimated* as DTR = -4.91 + 15.83 k + 1.585 ln(1 + VPD)
  (k = SW_IN_F / SW_IN_POT, VPD hPa; least squares on the 160 FluxVal sites, RMSE 1.6 degC) and
  tmin/tmax = TA_F -/+ DTR / 2. The file's attributes say which was used.
- AmeriFlux BASE files have no partitioning: only NEE (``NEE_PI``, else ``FC``) is a target; GPP/Reco are NaN.
Aggregation to months needs at least ``min_coverage`` of the month's days present (else NaN, never zero).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from tamrl_coupler import vocabulary
from tamrl_coupler.constants import M_C, SECONDS_PER_DAY
from tamrl_coupler.data.checks import check_values
from tamrl_coupler.data.dataset import FluxDataset, targets_from_fluxnet
from tamrl_coupler.data.fluxnet_daily import numeric_column, read_csv
from tamrl_coupler.errors import InputError
from tamrl_coupler.physics.subdaily import diurnal_temperature_range
from tamrl_coupler.physics.units import driver_conversion
from tamrl_coupler.vocabulary import igbp_index

# AmeriFlux BASE column names -> the FLUXNET column of the same quantity and unit (its range: data/checks.py)
_CHECKED = {"TA": "TA_F", "TA_PI_F": "TA_F", "SW_IN": "SW_IN_F", "SW_IN_PI_F": "SW_IN_F", "VPD_PI": "VPD_F",
            "VPD": "VPD_F", "P": "P_F", "P_PI_F": "P_F", "CO2": "CO2_F_MDS"}
UMOL_TO_GC_PER_DAY = M_C * 1e-6 * SECONDS_PER_DAY  # umol CO2 m-2 s-1 -> gC m-2 d-1
WM2_TO_MJ_PER_DAY = driver_conversion("swdown", "rsds").scale  # W m-2 -> MJ m-2 d-1

_FLX_NAME = re.compile(
    r"FLX_(?P<site>[A-Z]{2}-[A-Za-z0-9]{3})_FLUXNET2015_(?P<set>FULLSET|SUBSET)_(?P<res>HH|HR|DD|WW|MM|YY)")
_AMF_NAME = re.compile(r"AMF_(?P<site>[A-Z]{2}-[A-Za-z0-9]{3})_BASE_(?P<res>HH|HR)")


def _find(columns: list[str], *names: str) -> str | None:
    """First column that is exactly one of ``names`` or that name with an AmeriFlux position suffix (_1_1_1)."""
    for name in names:
        if name in columns:
            return name
        for col in columns:
            if re.fullmatch(rf"{re.escape(name)}(_\d+)+", col):
                return col
    return None


def _timestamps(df, res: str, path: Path) -> np.ndarray:
    import pandas as pd

    col = "TIMESTAMP" if "TIMESTAMP" in df.columns else "TIMESTAMP_START" if "TIMESTAMP_START" in df.columns else None
    if col is None:
        raise InputError(f"{path}: no TIMESTAMP or TIMESTAMP_START column")
    fmt = {"DD": "%Y%m%d", "MM": "%Y%m", "HH": "%Y%m%d%H%M", "HR": "%Y%m%d%H%M"}[res]
    try:
        return pd.to_datetime(df[col].astype("int64").astype(str), format=fmt).values
    except (ValueError, TypeError) as exc:
        raise InputError(f"{path}: column {col} does not hold {fmt} timestamps ({exc})") from None


def _monthly(series, min_coverage: float, days_in_month):
    """Mean per month, NaN where fewer than ``min_coverage`` of the month's days are present."""
    grouped = series.groupby(series.index.to_period("M"))
    mean, count = grouped.mean(), grouped.count()
    ok = count.values >= min_coverage * days_in_month(mean.index)
    return mean.where(ok)


def read_fluxnet_file(path: str | Path, period: str = "monthly", min_coverage: float = 0.5,
                      igbp: str = "") -> FluxDataset:
    """One FLUXNET2015 or AmeriFlux BASE CSV file (one site) -> FluxDataset with one site."""
    import pandas as pd

    path = Path(path)
    if period not in ("monthly", "daily"):
        raise InputError(f"period: expected 'monthly' or 'daily', got {period!r}")
    m_flx, m_amf = _FLX_NAME.search(path.name), _AMF_NAME.search(path.name)
    if not (m_flx or m_amf):
        raise InputError(f"{path.name}: not a FLUXNET2015 (FLX_<site>_FLUXNET2015_<set>_<res>_...) or AmeriFlux BASE "
                         "(AMF_<site>_BASE_<res>_...) file name")
    site, res = (m_flx or m_amf).group("site"), (m_flx or m_amf).group("res")
    if res not in ("HH", "HR", "DD", "MM"):
        raise InputError(f"{path.name}: resolution {res} is not supported (use HH, HR, DD or MM files)")
    df = read_csv(path, "flux file", comment="#" if m_amf else None, na_values=[-9999, "-9999"], low_memory=False)
    df.columns = [c.strip() for c in df.columns]
    df.index = pd.DatetimeIndex(_timestamps(df, res, path))
    cols = list(df.columns)
    if m_flx:
        names = {"ta": ("TA_F",), "sw": ("SW_IN_F",), "swpot": ("SW_IN_POT",), "vpd": ("VPD_F",), "p": ("P_F",),
                 "co2": ("CO2_F_MDS",), "nee": ("NEE_VUT_REF",), "gpp": ("GPP_NT_VUT_REF",)}
    else:
        names = {"ta": ("TA", "TA_PI_F"), "sw": ("SW_IN", "SW_IN_PI_F"), "swpot": ("SW_IN_POT",),
                 "vpd": ("VPD_PI", "VPD"), "p": ("P", "P_PI_F"), "co2": ("CO2",), "nee": ("NEE_PI", "FC"),
                 "gpp": ("GPP_PI",)}
    col = {k: _find(cols, *v) for k, v in names.items()}
    for key in ("ta", "sw", "vpd", "p"):
        if col[key] is None:
            raise InputError(f"{path}: required column {' or '.join(names[key])} is missing")
    sub_daily = res in ("HH", "HR")
    per_day = 48 if res == "HH" else 24
    for key in ("ta", "sw", "swpot", "vpd", "p", "co2") + (("nee", "gpp") if res in ("DD", "MM") else ()):
        if col[key] is not None:  # sub-daily fluxes are in umol m-2 s-1: checked as the daily values they make
            df[col[key]] = numeric_column(df, col[key], path)
            check_values(df[col[key]].to_numpy(), _CHECKED.get(col[key], col[key]), str(path), site)
    f = pd.DataFrame(index=df.index)
    f["ta"] = df[col["ta"]].astype(float)
    f["sw"] = df[col["sw"]].astype(float) * WM2_TO_MJ_PER_DAY
    f["swpot"] = df[col["swpot"]].astype(float) * WM2_TO_MJ_PER_DAY if col["swpot"] else np.nan
    f["vpd"] = df[col["vpd"]].astype(float)
    f["p"] = df[col["p"]].astype(float) * (per_day if sub_daily else 1.0)
    f["co2"] = df[col["co2"]].astype(float) if col["co2"] else np.nan
    flux_factor = UMOL_TO_GC_PER_DAY if (sub_daily or m_amf) else 1.0
    f["nee"] = df[col["nee"]].astype(float) * flux_factor if col["nee"] else np.nan
    f["gpp"] = df[col["gpp"]].astype(float) * flux_factor if col["gpp"] else np.nan
    if sub_daily and col["nee"] and f"{col['nee']}_QC" in cols:
        f.loc[df[f"{col['nee']}_QC"].values == 3, "nee"] = np.nan
    tmin_source = "daily min/max of TA (sub-daily file)"
    if sub_daily:
        day = f.groupby(f.index.floor("D"))
        counts = day.count()
        daily = day.mean().where(counts >= 0.8 * per_day)  # a day needs 80 % of its records
        daily["tmin"] = day["ta"].min().where(counts["ta"] >= 0.8 * per_day)
        daily["tmax"] = day["ta"].max().where(counts["ta"] >= 0.8 * per_day)
    else:
        daily = f
        tmin_source = "TA_F -/+ estimated diurnal range (DD/MM file has no daily extremes; see docs/model.md)"
    if period == "monthly" and res != "MM":
        agg = {}
        for name in daily.columns:
            agg[name] = _monthly(daily[name], min_coverage, lambda idx: idx.days_in_month.values)
        out = pd.DataFrame(agg)
        out.index = out.index.to_timestamp()
    else:
        out = daily
        if period == "daily" and res == "MM":
            raise InputError(f"{path}: a monthly (MM) file cannot give daily data")
    if "tmin" not in out:
        dtr = diurnal_temperature_range((out["sw"] / out["swpot"]).to_numpy(), out["vpd"].to_numpy())
        out["tmin"], out["tmax"] = out["ta"] - dtr / 2, out["ta"] + dtr / 2
    time = out.index.values.astype("datetime64[ns]")
    row = lambda s: s.values.astype(np.float64)[None, :]  # noqa: E731
    drivers = {"tmin": row(out["tmin"]), "tmax": row(out["tmax"]), "swdown": row(out["sw"]), "vpd": row(out["vpd"]),
               "precip": row(out["p"])}
    if out["co2"].notna().any():
        drivers["co2"] = row(out["co2"])
    targets = targets_from_fluxnet(row(out["gpp"]), row(out["nee"]))
    if m_amf and not col["gpp"]:
        targets["nee"] = -row(out["nee"])  # NEE only (no partitioning): product convention
        targets["gpp"] = np.full_like(targets["nee"], np.nan)
        targets["reco"] = np.full_like(targets["nee"], np.nan)
    ds = FluxDataset(
        sites=np.array([site]), time=time, period=period, drivers=drivers, targets=targets,
        igbp=np.array([igbp]), source=str(path),
        attrs={"source_file": path.name, "resolution": res, "tmin_tmax": tmin_source,
               "conversions": "SW W m-2 x 0.0864 -> MJ m-2 d-1; CO2 flux umol m-2 s-1 x 1.0377504 -> gC m-2 d-1; "
                              "Reco = NEE_VUT_REF + GPP_NT_VUT_REF; NEE(product) = GPP - Reco"},
    )
    ds.drivers["igbp"] = np.repeat(igbp_index([igbp])[:, None], len(time), axis=1)
    return ds


def read_fluxnet(path: str | Path, period: str = "monthly", min_coverage: float = 0.5,
                 igbp: dict[str, str] | None = None) -> FluxDataset:
    """A FLUXNET2015 / AmeriFlux BASE file, or a directory of them (one site each), on a common time axis."""
    path = Path(path)
    files = [path] if path.is_file() else sorted(
        p for p in path.glob("*.csv") if _FLX_NAME.search(p.name) or _AMF_NAME.search(p.name))
    if not files:
        raise InputError(f"{path}: no FLUXNET2015 or AmeriFlux BASE .csv files found")
    igbp = igbp or {}
    parts = []
    for f in files:
        m = _FLX_NAME.search(f.name) or _AMF_NAME.search(f.name)
        parts.append(read_fluxnet_file(f, period, min_coverage, igbp.get(m.group("site"), "") if m else ""))
    if len(parts) == 1:
        return parts[0]
    by_site: dict[str, FluxDataset] = {}
    for p in parts:  # one file per site: prefer the finest resolution (true tmin/tmax)
        s = str(p.sites[0])
        if s not in by_site or p.attrs["resolution"] in ("HH", "HR"):
            by_site[s] = p
    parts = list(by_site.values())
    time = np.unique(np.concatenate([p.time for p in parts]))
    shape = (len(parts), len(time))

    def stack(group: str, name: str) -> np.ndarray:
        out = np.full(shape, np.nan)
        for i, p in enumerate(parts):
            arr = getattr(p, group).get(name)
            if arr is not None:
                out[i, np.searchsorted(time, p.time)] = arr[0]
        return out

    driver_names = sorted({k for p in parts for k in p.drivers})
    return FluxDataset(
        sites=np.array([str(p.sites[0]) for p in parts]), time=time, period=period,
        drivers={k: stack("drivers", k) for k in driver_names},
        targets={k: stack("targets", k) for k in vocabulary.TARGETS},
        igbp=np.array([str(p.igbp[0]) for p in parts]), source=str(path),
        attrs={"files": ", ".join(p.attrs["source_file"] for p in parts)},
    )
