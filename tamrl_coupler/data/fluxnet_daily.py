"""Reader for a folder of daily (DD) tower files plus a site table -> one daily :class:`FluxDataset`.

Why its own reader: the daily model is trained and scored on many towers at once, from two file families that share
FLUXNET2015's column names -- ``FLX_<site>_FLUXNET2015_<FULLSET|SUBSET>_DD_...`` and the ICOS Warm Winter 2020
files ``FLX_<site>_ICOSWW2020_<FULLSET|ERAMET>_DD_...`` -- and needs what the files do not hold (latitude, elevation,
land cover) from a site table (``sites.csv``: ``SITE_ID, lat, lon, elevation, IGBP``).

Conversions at the edge: ``-9999`` -> NaN; SW_IN_F W m-2 -> MJ m-2 d-1; every other driver keeps its FLUXNET unit,
which is the vocabulary's (TA_F degC, VPD_F hPa, P_F mm d-1, LW_IN_F W m-2, PA_F kPa, WS_F m s-1, CO2_F_MDS ppm).
Targets (absent in drivers-only files): GPP_NT_VUT_REF, RECO_NT_VUT_REF and the observed NEE as the product's
NEE = -NEE_VUT_REF (FLUXNET writes NEE = Reco - GPP; the file's partitioned fluxes satisfy that only approximately,
so NEE is kept as measured for scoring, while a model derives its NEE from GPP and Reco).
QC: NEE_VUT_REF_QC is the fraction of the day's half-hours measured or well gap-filled. ``qc="filter"`` drops the
targets of days below ``qc_min`` (0.5); ``qc="weight"`` keeps them and returns the fraction as a training weight.
Files whose QC column is all missing (ICOS ``ERAMET``: only days with QC > 0.75 were published) count as QC 1.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from tamrl_coupler.data.checks import check_site, check_values
from tamrl_coupler.data.dataset import FluxDataset
from tamrl_coupler.errors import InputError
from tamrl_coupler.physics.units import driver_conversion
from tamrl_coupler.vocabulary import igbp_index

DAILY_FILE = re.compile(
    r"^FLX_(?P<site>[A-Z]{2}-[A-Za-z0-9]{3})_(?P<family>FLUXNET2015|ICOSWW2020)_(?P<set>FULLSET|SUBSET|ERAMET)_DD_")
# driver -> FLUXNET DD column; the first four are required
DRIVER_COLUMNS: dict[str, str] = {
    "tmean": "TA_F", "swdown": "SW_IN_F", "vpd": "VPD_F", "precip": "P_F",
    "lwdown": "LW_IN_F", "pressure": "PA_F", "wind": "WS_F", "co2": "CO2_F_MDS",
}
REQUIRED_COLUMNS = ("TA_F", "SW_IN_F", "VPD_F", "P_F")
TARGET_COLUMNS = {"gpp": "GPP_NT_VUT_REF", "reco": "RECO_NT_VUT_REF", "nee": "NEE_VUT_REF"}
QC_COLUMN = "NEE_VUT_REF_QC"
SW_TO_MJ = driver_conversion("swdown", "rsds").scale
QC_MODES = ("filter", "weight")


def daily_files(path: Path) -> list[Path]:
    """The DD files of both families in a folder (or the one file given), sorted by name."""
    if path.is_file():
        if not DAILY_FILE.match(path.name):
            raise InputError(f"{path.name}: not a daily tower file (FLX_<site>_<FLUXNET2015|ICOSWW2020>_<set>_DD_...)")
        return [path]
    files = sorted(p for p in path.glob("*.csv") if DAILY_FILE.match(p.name))
    if not files:
        raise InputError(f"{path}: no daily tower files (FLX_<site>_<FLUXNET2015|ICOSWW2020>_<set>_DD_*.csv) found")
    return files


def read_site_table(path: Path) -> dict[str, dict[str, float | str]]:
    """``sites.csv`` -> {site: {lat, lon, elevation, igbp}}; a missing column is an error naming it."""
    import pandas as pd

    if not Path(path).is_file():
        raise InputError(f"site table {path} does not exist (expected a CSV with SITE_ID, lat, lon, elevation, IGBP)")
    table = read_csv(path, "site table", dtype={"IGBP": str, "SITE_ID": str})
    missing = [c for c in ("SITE_ID", "lat", "lon", "IGBP") if c not in table.columns]
    if missing:
        raise InputError(f"{path}: site table lacks column(s) {missing}; expected SITE_ID, lat, lon, elevation, IGBP")
    if table.empty:
        raise InputError(f"{path}: site table has no sites")
    for col in ("lat", "lon", "elevation"):
        if col not in table.columns:
            continue
        values = pd.to_numeric(table[col], errors="coerce")
        bad = values.isna() & table[col].notna()
        if bad.any():
            i = int(np.flatnonzero(bad.to_numpy())[0])
            raise InputError(f"{path}: {col} of site {table['SITE_ID'].iloc[i]} is {table[col].iloc[i]!r}, "
                             "expected a number (degrees; elevation in m)")
        table[col] = values
    elev = table["elevation"] if "elevation" in table.columns else np.full(len(table), np.nan)
    text = {c: table[c].fillna("").astype(str) if c in table.columns else [""] * len(table)
            for c in ("licence", "citation")}
    out: dict[str, dict[str, float | str]] = {}
    for row, (r, e, lic, cit) in enumerate(zip(table.itertuples(), elev, text["licence"], text["citation"],
                                               strict=True)):
        site = str(r.SITE_ID)
        fields = {"lat": float(r.lat), "lon": float(r.lon), "elevation": float(e),
                  "igbp": "" if pd.isna(r.IGBP) else str(r.IGBP).strip(), "licence": lic, "citation": cit}
        check_site(site, fields, str(path))
        earlier = out.get(site)
        if earlier is not None and _position(earlier) != _position(fields):
            raise InputError(f"{path}: site {site} has two rows that disagree (row {row + 2}: lat {fields['lat']}, "
                             f"lon {fields['lon']}, elevation {fields['elevation']}, IGBP {fields['igbp']!r}; an "
                             f"earlier row: lat {earlier['lat']}, lon {earlier['lon']}, elevation "
                             f"{earlier['elevation']}, IGBP {earlier['igbp']!r}); keep one")
        out[site] = fields
    return out


def _position(fields: dict) -> tuple:
    """What two rows of one site must agree on (NaN equal to NaN: both unknown)."""
    return tuple("?" if isinstance(v, float) and np.isnan(v) else v
                 for v in (fields[k] for k in ("lat", "lon", "elevation", "igbp")))


def read_csv(path: Path, what: str, **kwargs):
    """``pandas.read_csv`` whose errors name the file (pandas' parser errors name neither file nor column)."""
    import pandas as pd

    try:
        return pd.read_csv(path, **kwargs)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, ValueError) as exc:
        raise InputError(f"{what} {path} cannot be read as CSV: {type(exc).__name__}: {exc}") from None


def numeric_column(df, column: str, path: Path) -> np.ndarray:
    """A column as float64 (empty and ``-9999`` cells NaN); text in it is an error naming the file, column and row."""
    import pandas as pd

    values = pd.to_numeric(df[column], errors="coerce")
    bad = values.isna() & df[column].notna()
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        raise InputError(f"{path}: column {column}, row {i + 2}: {df[column].iloc[i]!r} is not a number")
    return np.array(values, dtype=np.float64)  # a writable copy


def attribution(sites: list[str], table: dict[str, dict]) -> dict[str, str]:
    """Licence(s) and citations of ``sites`` from the site table: each reference once, with the sites it covers
    (the FLUXNET and ICOS data policies ask users to cite the product and list the sites used)."""
    refs: dict[str, list[str]] = {}
    for site in sites:
        parts = [p.strip() for p in str(table.get(site, {}).get("citation", "")).split("; ")]
        for ref in parts:  # "<product reference>; site <ID> (...); <further credit, e.g. a conversion>"
            if ref and not ref.startswith("site "):
                refs.setdefault(ref, []).append(site)
    licences = sorted({str(table.get(s, {}).get("licence", "")) for s in sites} - {""})
    return {"license": ", ".join(licences),
            "source": " ".join(f"{ref}; sites: {', '.join(ss)}." for ref, ss in refs.items())}


def _read_file(path: Path, qc: str, qc_min: float):
    """One site's file -> (first day, drivers {name: (T,)}, targets {name: (T,)} or {}, weight (T,) or None)."""
    import pandas as pd

    df = read_csv(path, "daily tower file", na_values=[-9999, "-9999", -9999.0])
    if "TIMESTAMP" not in df.columns:
        raise InputError(f"{path}: no TIMESTAMP column")
    site = DAILY_FILE.match(path.name).group("site") if DAILY_FILE.match(path.name) else path.stem
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if missing:
        raise InputError(f"{path}: required driver column(s) {missing} missing (need {list(REQUIRED_COLUMNS)})")
    if df.empty:
        raise InputError(f"{path}: no rows (a DD file needs one row per day)")
    stamps = numeric_column(df, "TIMESTAMP", path)
    if not np.isfinite(stamps).all() or (stamps != np.round(stamps)).any():
        i = int(np.flatnonzero(~np.isfinite(stamps) | (stamps != np.round(stamps)))[0])
        raise InputError(f"{path}: column TIMESTAMP, row {i + 2}: '{df['TIMESTAMP'].iloc[i]}' is not a whole "
                         f"YYYYMMDD day (a decimal or missing day would be truncated to another)")
    try:
        days = pd.to_datetime(stamps.astype(np.int64).astype(str), format="%Y%m%d").values
    except (ValueError, TypeError) as exc:
        raise InputError(f"{path}: TIMESTAMP does not hold YYYYMMDD days ({exc})") from None
    days = days.astype("datetime64[D]")
    step = np.diff(days.astype(np.int64))
    if np.any(step != 1):
        bad = int(np.flatnonzero(step != 1)[0]) + 1
        raise InputError(f"{path}: row {bad + 2} ({days[bad]}) does not follow the previous day: a DD file needs one "
                         "row per consecutive day")
    drivers = {}
    for name, col in DRIVER_COLUMNS.items():
        if col in df.columns:
            v = numeric_column(df, col, path)
            check_values(v, col, str(path), site)
            drivers[name] = v * SW_TO_MJ if name == "swdown" else v
    targets: dict[str, np.ndarray] = {}
    weight = None
    if all(c in df.columns for c in TARGET_COLUMNS.values()):
        targets = {k: numeric_column(df, c, path) for k, c in TARGET_COLUMNS.items()}
        for c, v in zip(TARGET_COLUMNS.values(), targets.values(), strict=True):
            check_values(v, c, str(path), site)
        targets["nee"] = -targets["nee"]  # FLUXNET NEE = Reco - GPP -> product NEE = GPP - Reco
        q = numeric_column(df, QC_COLUMN, path) if QC_COLUMN in df.columns else np.full(len(df), np.nan)
        if np.isfinite(q).any():
            ok = np.isfinite(q) & (q >= qc_min) if qc == "filter" else np.isfinite(q)
            for v in targets.values():
                v[~ok] = np.nan
            weight = np.where(np.isfinite(q), np.clip(q, 0.0, 1.0), 0.0)
        else:  # no QC published: only days that passed QC > 0.75 upstream are present
            weight = np.ones(len(df))
        present = np.all([np.isfinite(v) for v in targets.values()], axis=0)
        for v in targets.values():
            v[~present] = np.nan
    return days[0], drivers, targets, weight


def read_fluxnet_daily(path: str | Path, sites: str | Path | None = None, qc: str = "filter",
                       qc_min: float = 0.5) -> FluxDataset:
    """A folder of daily tower files (or one file) and its site table -> daily FluxDataset on a common day axis.

    ``sites`` defaults to ``sites.csv`` beside the files; without a table latitude and land cover are missing.
    The dataset's ``weight`` holds the QC fraction per day (1 where no QC was published) when ``qc="weight"``.
    """
    if qc not in QC_MODES:
        raise InputError(f"qc: expected one of {list(QC_MODES)}, got {qc!r}")
    path = Path(path)
    files = daily_files(path)
    folder = path if path.is_dir() else path.parent
    table_path = Path(sites) if sites is not None else folder / "sites.csv"
    table = read_site_table(table_path) if (sites is not None or table_path.exists()) else {}
    seen: dict[str, Path] = {}
    parts = []
    for f in files:
        site = DAILY_FILE.match(f.name).group("site")
        if site in seen:
            raise InputError(f"site {site} has two daily files: {seen[site].name} and {f.name}")
        seen[site] = f
        if table_path.exists() and site not in table:
            raise InputError(f"{f.name}: site {site} is not in the site table {table_path}")
        parts.append((site, f, *_read_file(f, qc, qc_min)))
    first = min(p[2] for p in parts)
    last = max(p[2] + len(next(iter(p[3].values()))) - 1 for p in parts)
    time = np.arange(first, last + 1).astype("datetime64[ns]")
    shape = (len(parts), len(time))
    driver_names = [n for n in DRIVER_COLUMNS if any(n in p[3] for p in parts)]
    drivers = {n: np.full(shape, np.nan) for n in driver_names}
    with_targets = any(p[4] for p in parts)
    targets = {k: np.full(shape, np.nan) for k in TARGET_COLUMNS} if with_targets else {}
    weight = np.zeros(shape) if with_targets else None
    for i, (_, _, day0, drv, tgt, w) in enumerate(parts):
        j = int((day0 - first).astype(np.int64))
        n = len(next(iter(drv.values())))
        for k, v in drv.items():
            drivers[k][i, j:j + n] = v
        for k, v in tgt.items():
            targets[k][i, j:j + n] = v
        if w is not None:
            weight[i, j:j + n] = w
    names = [p[0] for p in parts]
    meta = [table.get(s, {}) for s in names]
    igbp = np.array([str(m.get("igbp", "")) for m in meta])
    ds = FluxDataset(
        sites=np.array(names), time=time, period="daily", drivers=drivers, targets=targets, igbp=igbp,
        lat=np.array([m.get("lat", np.nan) for m in meta], dtype=np.float64),
        lon=np.array([m.get("lon", np.nan) for m in meta], dtype=np.float64),
        elevation=np.array([m.get("elevation", np.nan) for m in meta], dtype=np.float64),
        weight=weight if qc == "weight" else None, source=str(path),
        attrs={**attribution(names, table), "files": ", ".join(p[1].name for p in parts),
               "site_table": str(table_path) if table else "",
               "qc": f"{qc} (NEE_VUT_REF_QC >= {qc_min} kept)" if qc == "filter" else "weight = NEE_VUT_REF_QC",
               "conversions": "SW_IN_F W m-2 x 0.0864 -> MJ m-2 d-1; NEE(product) = -NEE_VUT_REF = GPP - Reco "
                              "(uptake positive); GPP_NT_VUT_REF, RECO_NT_VUT_REF as published"},
    )
    ds.drivers["igbp"] = np.repeat(igbp_index(igbp)[:, None], len(time), axis=1)
    return ds
