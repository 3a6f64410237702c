"""The CV report's site-honest sections: every row against each baseline per site, per IGBP class, per climate zone
and on extreme days, with site-resampled 90 % intervals (:mod:`tamrl_coupler.training.site_scores`)."""

from __future__ import annotations

import numpy as np

from tamrl_coupler.data.dataset import FluxDataset
from tamrl_coupler.training.climate import ZONE_NAMES, site_zones
from tamrl_coupler.training.extremes import extreme_masks
from tamrl_coupler.training.site_scores import N_BOOT, compare, compare_groups, fmt_ratio

FLUX_NAMES = {"gpp": "GPP", "reco": "Reco", "nee": "NEE"}


def family(row: str) -> str:
    """'tamrl (met-only)' -> 'tamrl'."""
    return row.split(" (")[0]


def baseline_of(row: str, base: str, rows) -> str | None:
    """The baseline row ``row`` is compared with: the baseline's row of the same inputs ('xgboost (met-only)' for a
    met-only row) where there is one, else the baseline itself; None for the baseline's own rows."""
    if family(row) == base or base not in rows:
        return None
    tag = row[len(family(row)):]
    return base + tag if tag == " (met-only)" and base + tag in rows else base


def _main_rows(preds: dict) -> list[str]:
    return [r for r in preds if "(" not in r]


def site_report(preds: dict[str, dict[str, np.ndarray]], data: FluxDataset, fold: np.ndarray,
                compare_to: list[str], min_obs: int = 6, n_boot: int = N_BOOT, seed: int = 0) -> dict:
    """JSON-able site-honest scores of every row of ``preds`` ((site, time) arrays in ``data``'s site order)."""
    obs = data.targets
    fluxes = [v for v in FLUX_NAMES if v in obs]
    zones = site_zones(data)
    masks = extreme_masks(data)
    min_subset = min_obs if data.period == "daily" else 2  # a drought summer has 3 months
    report: dict = {"zones": {str(s): str(z) for s, z in zip(data.sites, zones, strict=True)},
                    "n_boot": n_boot, "seed": seed, "min_obs_subset": min_subset, "compare": {}, "by_igbp": {},
                    "by_zone": {}, "extremes": {}}
    for row, p in preds.items():
        for base in compare_to:
            b = baseline_of(row, base, preds)
            if b is None:
                continue
            report["compare"].setdefault(row, {})[b] = {
                v: compare(p[v], preds[b][v], obs[v], fold, min_obs, n_boot, seed) for v in fluxes}
            if row not in _main_rows(preds) or b != base or base != compare_to[0]:
                continue  # classes, zones and extremes: the all-input rows against the first baseline only
            for key, groups in (("by_igbp", data.igbp), ("by_zone", zones)):
                report[key].setdefault(row, {})[b] = {
                    v: compare_groups(p[v], preds[b][v], obs[v], groups, min_obs, n_boot, seed) for v in fluxes}
            report["extremes"].setdefault(row, {})[b] = {
                name: {v: compare(p[v], preds[b][v], obs[v], None, min_subset, n_boot, seed, mask=m)
                       for v in fluxes}
                for name, m in masks.items()}
    return report


def _cell(c: dict, key: str = "median_site_ratio") -> str:
    return fmt_ratio(c.get(key, float("nan")), c.get(f"{key}_ci", [float("nan")] * 2))


def site_report_lines(report: dict, counts_igbp: dict[str, int]) -> list[str]:
    """Markdown sections of :func:`site_report`."""
    lines = ["", "## Per site, against each baseline", "",
             f"RMSE ratios to the baseline on the same held-out pairs; in brackets a 90 % interval from resampling "
             f"the sites ({report['n_boot']} draws, seed {report['seed']}); **bold**: the whole interval lies below 1 "
             "(only such a lead counts). Median per-site RMSE: model / baseline. 'Better at': share of sites where "
             "the model's RMSE is lower. The last two columns leave out the longest-record site of each fold.", ""]
    fluxes = sorted({v for r in report["compare"].values() for b in r.values() for v in b},
                    key=list(FLUX_NAMES).index)
    for v in fluxes:
        lines += [f"### {FLUX_NAMES[v]}", "",
                  "| model | against | pooled ratio | median per-site ratio | median per-site RMSE | better at | "
                  "pooled, w/o longest | median per-site, w/o longest |", "|---|---|---|---|---|---|---|---|"]
        for row, bases in report["compare"].items():
            for b, res in bases.items():
                c = res[v]
                if not c["n_sites"]:
                    continue
                w = c.get("without_longest", {})
                lines.append(
                    f"| {row} | {b} | {_cell(c, 'pooled_ratio')} | {_cell(c)} | {c['median_site_rmse']:.3f} / "
                    f"{c['median_site_rmse_base']:.3f} | {c['share_better']:.0%} of {c['n_sites']} | "
                    f"{_cell(w, 'pooled_ratio') if w else '-'} | {_cell(w) if w else '-'} |")
        lines.append("")
    for key, title in (("by_igbp", "IGBP class"), ("by_zone", "climate zone")):
        if not report[key]:
            continue
        lines += [f"## Per {title}: median per-site RMSE ratio [90 % interval] (pooled ratio)", ""]
        if key == "by_zone":
            zs = list(report["zones"].values())
            lines += ["Köppen-like main class of each site from its own drivers' monthly normals "
                      "(`training/climate.py`): " + ", ".join(f"{z} {ZONE_NAMES[z]} ({zs.count(z)})"
                                                               for z in ZONE_NAMES if z in zs) + ".", ""]
        lines += [f"| {title} (sites) | model | against | " + " | ".join(FLUX_NAMES[v] for v in fluxes) + " |",
                  "|---|---|---|" + "---|" * len(fluxes)]
        for row, bases in report[key].items():
            for b, res in bases.items():
                for g in res[fluxes[0]]:
                    n = counts_igbp.get(g) if key == "by_igbp" else list(report["zones"].values()).count(g)
                    cells = [f"{_cell(res[v][g])} ({res[v][g].get('pooled_ratio', float('nan')):.3f})"
                             for v in fluxes]
                    lines.append(f"| {g} ({n}) | {row} | {b} | " + " | ".join(cells) + " |")
        lines.append("")
    if report["extremes"]:
        lines += ["## Extremes: each site's hottest and driest days, drought summers", "",
                  "Pooled and median per-site RMSE ratio on the subset, beside the same row's ratios over all days "
                  f"(the lead should hold there too). Sites need {report['min_obs_subset']} periods in the subset.",
                  "",
                  "| model | against | subset | sites | " + " | ".join(
                      f"{FLUX_NAMES[v]} pooled | {FLUX_NAMES[v]} median per-site" for v in fluxes) + " |",
                  "|---|---|---|---|" + "---|---|" * len(fluxes)]
        for row, bases in report["extremes"].items():
            for b, subsets in bases.items():
                allc = report["compare"][row][b]
                lines.append(f"| {row} | {b} | all days | {allc[fluxes[0]]['n_sites']} | " + " | ".join(
                    f"{_cell(allc[v], 'pooled_ratio')} | {_cell(allc[v])}" for v in fluxes) + " |")
                for name, res in subsets.items():
                    lines.append(f"| {row} | {b} | {name} | {res[fluxes[0]]['n_sites']} | " + " | ".join(
                        f"{_cell(res[v], 'pooled_ratio')} | {_cell(res[v])}" for v in fluxes) + " |")
        lines.append("")
    return lines
