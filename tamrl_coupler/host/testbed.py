"""The global test bed: a checkpoint run over the whole land surface on a repeated CRU CL 1.0 climatological year
(io/testbed.py makes the forcing), its global and latitude-band totals for each budget mode, against the published
anchors -- ``tamrl-coupler testbed`` (docs/testbed.md).

The model runs over the cells in chunks (memory stays below ~1 GB), each cell from a cold start on the first day,
the year repeated ``years`` times; the budget modes are applied afterwards by the component's own rule
(physics/budget.py: the same arithmetic, period by period, no look-ahead).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tamrl_coupler.errors import InputError
from tamrl_coupler.io.testbed import LandCells, cru_land_cells, daily_drivers, daily_fields, monthly_drivers, year_axis

FIELDS = ("gpp", "reco", "gpp_std", "reco_std", "nee_std")


@dataclass
class TestbedRun:
    """As-trained model output on the test bed: (cells, periods) float32 rates [gC m-2 d-1] of ``FIELDS``."""

    checkpoint: str
    fingerprint: str
    period: str
    starts: np.ndarray  # datetime64[ns] period starts
    fields: dict[str, np.ndarray]
    settings: dict[str, Any]


def shared_paths(shared: str | Path) -> tuple[Path, Path]:
    """The CRU CL archives and the GLDAS land mask under ``shared`` (the project's ../shared)."""
    shared = Path(shared)
    cru, mask = shared / "data" / "cru_cl", shared / "data" / "gldas" / "GLDASp4_landmask_025d.nc4"
    if not cru.is_dir():
        raise InputError(f"{cru}: the CRU CL 1.0 normals are not there (../shared/data/cru_cl; set --shared)")
    return cru, mask


def load_cells(shared: str | Path, land: str = "gldas", fill_radiation: bool = True, every: int = 1) -> LandCells:
    """The test bed's cells: ``land`` 'gldas' (land fraction from the GLDAS 0.25-degree mask) or 'cru' (CRU's
    0.5-degree data mask); ``every``: every n-th cell only (a quick look; totals scaled by n)."""
    cru, mask = shared_paths(shared)
    if land == "gldas" and not mask.exists():
        raise InputError(f"{mask}: the GLDAS land mask is not there (use --land cru for CRU's own mask)")
    cells = cru_land_cells(cru, fill_radiation=fill_radiation, landmask=mask if land == "gldas" else None)
    if every > 1:
        keep = np.arange(0, cells.size, every)
        cells = LandCells(cells.lat[keep], cells.lon[keep], cells.index[keep], cells.area[keep] * every,
                          cells.landfrac[keep], {k: v[:, keep] for k, v in cells.normals.items()},
                          {**cells.attrs, "subsample": f"every {every}th cell, areas times {every}"})
    return cells


def model_drivers(ens: Any, cells: LandCells, vpd: str, weather: str) -> dict[str, np.ndarray]:
    """One year of the model's drivers (periods, cells) for ``ens``'s period."""
    if ens.meta.period == "daily":
        return daily_drivers(daily_fields(cells, vpd=vpd, weather=weather))
    return monthly_drivers(cells, vpd=vpd)


def run_testbed(ens: Any, cells: LandCells, years: int, vpd: str = "diurnal", weather: str = "synthetic",
                chunk: int = 2000, progress: Any = None) -> dict[str, np.ndarray]:
    """The ensemble over every cell for ``years`` repeated years -> (cells, periods) float32 ``FIELDS``."""
    import torch

    from tamrl_coupler.model.inference import predict_drivers

    drv = model_drivers(ens, cells, vpd, weather)
    names = ens.meta.driver_names
    starts = year_axis(ens.meta.period, years)
    per_year = next(iter(drv.values())).shape[0]
    out = {k: np.empty((cells.size, per_year * years), dtype=np.float32) for k in FIELDS}
    for a in range(0, cells.size, chunk):
        b = min(a + chunk, cells.size)
        x = np.full((b - a, per_year * years, len(names)), np.nan, dtype=np.float32)
        for j, name in enumerate(names):
            if name in drv:
                x[:, :, j] = np.tile(drv[name][:, a:b].T, (1, years))
        with torch.inference_mode():
            f = predict_drivers(ens, x, starts[0], cells.lat[a:b])
        for k in FIELDS:
            out[k][a:b] = f[k]
        if progress is not None:
            progress.update(b - a)
    return out


def raw_key(fingerprint: str, settings: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps({"fingerprint": fingerprint, **settings}, sort_keys=True).encode()
                          ).hexdigest()[:16]


def save_run(path: Path, run: TestbedRun) -> Path:
    from tamrl_coupler.atomicfile import atomic_path

    with atomic_path(path, "test bed model output") as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, starts=run.starts.astype("datetime64[D]").astype(np.int64),
                     meta=np.array(json.dumps({"checkpoint": run.checkpoint, "fingerprint": run.fingerprint,
                                               "period": run.period, "settings": run.settings})),
                     **run.fields)
    return path


def load_run(path: Path) -> TestbedRun:
    with np.load(path) as z:
        meta = json.loads(str(z["meta"]))
        return TestbedRun(meta["checkpoint"], meta["fingerprint"], meta["period"],
                          z["starts"].astype("datetime64[D]").astype("datetime64[ns]"),
                          {k: z[k] for k in FIELDS}, meta["settings"])


# ------------------------------------------------------------------------------------------------------ the table
ANCHOR_ROWS = (
    ("global GPP", "110-140 (123 +- 8)", "FLUXCOM-family and satellite-based products: Beer et al. 2010, Science "
     "329:834 (123 +- 8); Jung et al. 2011, JGR 116:G00J07 (119 +- 6); Jung et al. 2020, Biogeosciences 17:1343 "
     "(FLUXCOM RS+METEO); MODIS MOD17 (Zhao et al. 2005)"),
    ("GPP of tropical forests and savannas", "72 of 123 (59 %)", "Beer et al. 2010 (tropical forests 40.8, "
     "tropical savannas and grasslands 31.3; temperate forests 9.9, boreal forests 8.3, temperate grass/shrub 8.5, "
     "deserts 6.4, tundra 1.6, croplands 14.8)"),
    ("natural land sink (NEE)", "+2 to +3", "Global Carbon Budget (Friedlingstein et al. 2022, ESSD 14:4811: S_LAND "
     "3.1 +- 0.6 for 2012-2021)"),
    ("NEE of FLUXCOM-X-BASE", "+5.75 (2001-20), itself held to be too strong", "Nelson et al. 2024, "
     "Biogeosciences 21:5079"),
    ("Reco", "~ GPP - NEE", ""),
    ("season", "the northern winter (Dec-Feb) is a net source", "the atmospheric CO2 seasonal cycle"),
)
ANCHORS = "Anchors (annual, PgC/yr; NEE uptake positive):\n\n| quantity | anchor | source |\n|---|---|---|\n" + \
    "".join(f"| {a} | {b} | {c} |\n" for a, b, c in ANCHOR_ROWS)
MODES = (("as_trained", {}), ("balanced", {}), ("target 2.5 PgC/yr", {"sink_pgc": 2.5}))
APPROACHES = (("trailing year only (no prior)", "none", True), ("prior, then trailing year", "prior", True),
              ("prior only (fixed factors)", "prior", False))


def _month_index(starts: np.ndarray) -> np.ndarray:
    return starts.astype("datetime64[M]").astype(np.int64) % 12


def monthly_means(run: TestbedRun, year: int) -> tuple[np.ndarray, np.ndarray]:
    """(12, cells) monthly-mean as-trained GPP and Reco of year ``year`` (1-based) of the run."""
    years = run.starts.astype("datetime64[Y]").astype(np.int64)
    sel = years == years[0] + year - 1
    month = _month_index(run.starts)
    g = np.stack([run.fields["gpp"][:, sel & (month == m)].mean(axis=1) for m in range(12)])
    r = np.stack([run.fields["reco"][:, sel & (month == m)].mean(axis=1) for m in range(12)])
    return g, r


def period_days(run: TestbedRun) -> np.ndarray:
    unit = "D" if run.period == "daily" else "M"
    s = run.starts.astype(f"datetime64[{unit}]")
    return ((s + 1).astype("datetime64[D]") - s.astype("datetime64[D]")).astype(np.float64)


def _year_sums(x: np.ndarray, run: TestbedRun, weight: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per year: global total [PgC] and per-cell annual sums [gC m-2] of rates x (cells, T)."""
    days = period_days(run)
    years = run.starts.astype("datetime64[Y]").astype(np.int64)
    per_cell = np.stack([(x[:, years == y] * days[years == y]).sum(axis=1) for y in np.unique(years)])
    return (per_cell * weight).sum(axis=1) / 1e15, per_cell


def budget_rows(run: TestbedRun, cells: LandCells, prior: tuple[np.ndarray, np.ndarray] | None) -> list[dict]:
    """Every mode x expectation approach: annual totals, balance, the last year's seasonal cycle."""
    from tamrl_coupler.physics.budget import BudgetMode, BudgetSpec, apply_budget

    weight = cells.area * cells.landfrac
    gpp, reco = run.fields["gpp"].astype(np.float64), run.fields["reco"].astype(np.float64)
    days = period_days(run)
    years = run.starts.astype("datetime64[Y]").astype(np.int64)
    month = _month_index(run.starts)
    g_tot, g_cell = _year_sums(gpp, run, weight)
    rows = []
    for label, kw in MODES:
        mode = BudgetMode(label.split()[0])
        for name, prior_kind, running in (APPROACHES if mode is not BudgetMode.AS_TRAINED else
                                          (("-", "none", True),)):
            if prior_kind == "prior" and prior is None:
                continue
            spec = BudgetSpec(mode, running=running, **kw)
            adj, factor = apply_budget(gpp, reco, run.starts, run.period, spec,
                                       prior if prior_kind == "prior" else None, weight)
            r_tot, r_cell = _year_sums(adj, run, weight)
            nee_cell = g_cell - r_cell
            sink = kw.get("sink_pgc") or 0.0  # as_trained is measured against balance
            share = sink * 1e15 / max((g_cell[-1] * weight).sum(), 1.0)
            off = np.abs(nee_cell - share * g_cell)  # (years, cells)
            imbalance = (off * weight).sum(axis=1) / (g_cell * weight).sum(axis=1)
            last = years == years[-1]
            nee_month = np.array([((gpp - adj)[:, last & (month == m)] * days[last & (month == m)]).sum(axis=1)
                                  @ weight for m in range(12)]) / 1e15
            rows.append({"mode": label, "expectation": name, "gpp": g_tot.tolist(), "reco": r_tot.tolist(),
                         "nee": (g_tot - r_tot).tolist(), "cell_imbalance": imbalance.tolist(),
                         "nee_monthly_last_year": nee_month.tolist(),
                         "factor_p5_50_95": np.percentile(factor[:, last], [5, 50, 95]).tolist()})
    return rows


def band_rows(run: TestbedRun, cells: LandCells) -> dict[str, list[float]]:
    """The last year's as-trained totals per latitude band [PgC], and the land area per band [M km2]."""
    from tamrl_coupler.physics.totals import BANDS, band_index

    weight = cells.area * cells.landfrac
    b = band_index(cells.lat)
    out = {"area_Mkm2": [float(weight[b == j].sum() / 1e12) for j in range(len(BANDS))]}
    for k in ("gpp", "reco"):
        _, per_cell = _year_sums(run.fields[k].astype(np.float64), run, weight)
        out[k] = [float((per_cell[-1] * weight)[b == j].sum() / 1e15) for j in range(len(BANDS))]
    out["nee"] = [g - r for g, r in zip(out["gpp"], out["reco"], strict=True)]
    return out


PRECIP_CLASSES = ((0, 100), (100, 250), (250, 500), (500, 1000), (1000, 2000), (2000, 1e9))  # mm per year
TEMPERATURE_CLASSES = ((-99, -10), (-10, 0), (0, 10), (10, 20), (20, 99))  # annual mean, degC


def climate_rows(run: TestbedRun, cells: LandCells) -> dict[str, list[dict]]:
    """The last year's as-trained GPP by annual precipitation and by annual mean temperature of the cells: where the
    global total comes from (the towers sample few deserts, tundra or ice)."""
    weight = cells.area * cells.landfrac
    _, g = _year_sums(run.fields["gpp"].astype(np.float64), run, weight)
    _, r = _year_sums(run.fields["reco"].astype(np.float64), run, weight)
    g, r = g[-1], r[-1]
    p = cells.normals["pre"].mean(axis=0) * 365.0
    t = cells.normals["tmp"].mean(axis=0)
    out = {}
    for name, values, classes in (("precipitation_mm", p, PRECIP_CLASSES), ("temperature_C", t, TEMPERATURE_CLASSES)):
        rows = []
        for lo, hi in classes:
            m = (values >= lo) & (values < hi)
            w = weight[m].sum()
            rows.append({"class": [lo, hi], "area_Mkm2": float(w / 1e12),
                         "gpp_PgC": float((g * weight)[m].sum() / 1e15),
                         "gpp_per_m2": float((g * weight)[m].sum() / w) if w else float("nan"),
                         "reco_per_m2": float((r * weight)[m].sum() / w) if w else float("nan")})
        out[name] = rows
    return out


def spread_of_totals(run: TestbedRun, cells: LandCells) -> dict[str, list[float]]:
    """The last year's global totals' spread bounds [PgC] (physics/totals.py), per flux: [independent, correlated]."""
    from tamrl_coupler.physics.totals import totals_of

    years = run.starts.astype("datetime64[Y]").astype(np.int64)
    last = years == years[-1]
    f = {k: run.fields[k][:, last].astype(np.float64) for k in ("gpp", "reco")}
    f["nee"] = f["gpp"] - f["reco"]
    acc = totals_of(f, run.starts[last], period_days(run)[last], cells.area * cells.landfrac, cells.lat,
                    spreads={k: run.fields[f"{k}_std"][:, last].astype(np.float64) for k in ("gpp", "reco", "nee")})
    t = acc.by("Y")
    return {k: [float(t.spread[(k, "independent")][0]), float(t.spread[(k, "correlated")][0])]
            for k in ("gpp", "reco", "nee")}


def markdown(run: TestbedRun, cells: LandCells, rows: list[dict], bands: dict, spreads: dict, command: str,
             prior_note: str, climate: dict | None = None) -> str:
    """The result table of one checkpoint."""
    from tamrl_coupler.physics.totals import BANDS, band_name

    n_years = len(rows[0]["gpp"])
    months = "J F M A M J J A S O N D".split()
    lines = [f"# Global test bed: {run.checkpoint} ({run.period} model)", "",
             f"Made by `{command}` ({cells.size} land cells of 1 degree, {sum(bands['area_Mkm2']):.1f} M km2 of "
             f"land; a repeated CRU CL 1.0 climatological year, CO2 390 ppm, {n_years} years from a cold start; "
             f"forcing: {json.dumps(run.settings)}; checkpoint fingerprint {run.fingerprint[:12]}...). "
             "Totals in PgC per year, land-fraction weighted; NEE = GPP - Reco (uptake positive). "
             "docs/testbed.md says how the forcing is made and why.", "", ANCHORS, "",
             "## As trained, per simulated year", "",
             "| year | GPP | Reco | NEE |", "|---|---|---|---|"]
    at = rows[0]
    for y in range(n_years):
        lines.append(f"| {y + 1} | {at['gpp'][y]:.1f} | {at['reco'][y]:.1f} | {at['nee'][y]:+.2f} |")
    lines += ["", f"Spread of the last year's totals (calibrated predictive SD of each cell; [errors independent "
                  f"between cells .. fully correlated]): GPP [{spreads['gpp'][0]:.1f} .. {spreads['gpp'][1]:.1f}], "
                  f"Reco [{spreads['reco'][0]:.1f} .. {spreads['reco'][1]:.1f}], NEE [{spreads['nee'][0]:.1f} .. "
                  f"{spreads['nee'][1]:.1f}] PgC/yr.", "",
              "## Latitude bands, last year, as trained", "",
              "| band | land (M km2) | GPP | share of GPP | Reco | NEE |", "|---|---|---|---|---|---|"]
    g_all = sum(bands["gpp"])
    for j, b in enumerate(BANDS):
        lines.append(f"| {band_name(b)} | {bands['area_Mkm2'][j]:.1f} | {bands['gpp'][j]:.1f} | "
                     f"{100 * bands['gpp'][j] / g_all:.0f} % | {bands['reco'][j]:.1f} | {bands['nee'][j]:+.2f} |")
    lines += ["", f"Tropics (23.5S-23.5N): {100 * (bands['gpp'][1] + bands['gpp'][2]) / g_all:.0f} % of GPP "
                  "(Beer et al. 2010: tropical forests and savannas 59 %).", ""]
    for key, title, unit in (("precipitation_mm", "annual precipitation", "mm"),
                             ("temperature_C", "annual mean temperature", "degC")):
        if not climate:
            break
        lines += [f"GPP by the cells' {title}, last year, as trained:", "",
                  f"| {title} ({unit}) | land (M km2) | GPP (PgC/yr) | GPP (gC m-2 yr-1) | Reco (gC m-2 yr-1) |",
                  "|---|---|---|---|---|"]
        for c in climate[key]:
            lo, hi = c["class"]
            open_top = hi >= (1e8 if key == "precipitation_mm" else 99)
            label = f">= {lo:g}" if open_top else (f"< {hi:g}" if lo <= -99 else f"{lo:g} to {hi:g}")
            lines.append(f"| {label} | {c['area_Mkm2']:.1f} | {c['gpp_PgC']:.1f} | {c['gpp_per_m2']:.0f} | "
                         f"{c['reco_per_m2']:.0f} |")
        lines.append("")
    lines += [
              "## Budget modes", "", f"Prior: {prior_note}. Imbalance: sum over cells of |annual NEE - target| "
              "over global GPP (target 0 when balanced, the sink's share of the cell's GPP for a target).", "",
              "| mode | expectation | GPP | Reco | NEE | imbalance year 1 | year " + str(n_years) +
              " | Reco factor p5/p50/p95 | global NEE by month, last year (" + " ".join(months) + ") | amplitude "
              "| months with uptake |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        nm = np.array(r["nee_monthly_last_year"])
        lines.append(
            f"| {r['mode']} | {r['expectation']} | {r['gpp'][-1]:.1f} | {r['reco'][-1]:.1f} | {r['nee'][-1]:+.2f} "
            f"(year 1 {r['nee'][0]:+.2f}) | {100 * r['cell_imbalance'][0]:.1f} % | "
            f"{100 * r['cell_imbalance'][-1]:.2f} % "
            f"| {' / '.join(f'{v:.2f}' for v in r['factor_p5_50_95'])} | {' '.join(f'{v:+.1f}' for v in nm)} | "
            f"{nm.max() - nm.min():.1f} | {int((nm > 0).sum())} of 12 |")
    return "\n".join(lines) + "\n"


__all__ = ["ANCHORS", "FIELDS", "TestbedRun", "band_rows", "budget_rows", "load_cells", "load_run", "markdown",
           "model_drivers", "monthly_means", "period_days", "raw_key", "run_testbed", "save_run", "shared_paths",
           "spread_of_totals"]
