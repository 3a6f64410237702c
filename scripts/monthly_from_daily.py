"""Monthly fluxes at towers that have daily data: the daily model's monthly means against the monthly checkpoint.

    python scripts/monthly_from_daily.py DAILY_CV_PREDICTIONS.npz DAILY_DATA MONTHLY_CV_PREDICTIONS.npz FLUXVAL.nc
        [--daily-row tamrl] [--monthly-row tamrl] [--markdown OUT.md] [--json OUT.json]

Both prediction files are cross-validation held-out predictions (``tamrl-coupler cv``), so every value is from a
model that never saw the tower: the daily CV's daily fluxes become calendar-month means (months with every day
predicted; ``model/aggregate.py``), the monthly CV's are the monthly model's own. They are scored on the FluxVal
towers that are in both datasets, on the (tower, month) pairs where both predict and FluxVal has an observation,
against FluxVal's monthly observations (FLUXNET2015); the daily XGBoost's monthly means and the monthly XGBoost are
scored beside them. Ratios: per site, with a 90 % interval from resampling the towers (``training/site_scores.py``).
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys

import numpy as np

from tamrl_coupler.data.reader import read_dataset
from tamrl_coupler.model.aggregate import monthly_means
from tamrl_coupler.training.cv_report import read_predictions
from tamrl_coupler.training.metrics import flux_metrics
from tamrl_coupler.training.site_scores import compare, fmt_ratio

FLUXES = ("gpp", "reco", "nee")
NAMES = {"gpp": "GPP", "reco": "Reco", "nee": "NEE"}


def aligned(daily_npz: str, daily_data: str, monthly_npz: str, fluxval: str, rows: dict[str, tuple[str, str]]):
    """{label: (site, month) fields} on the common towers and FluxVal's months, and FluxVal's observations."""
    dpred, dsites, _ = read_predictions(daily_npz)
    mpred, msites, _ = read_predictions(monthly_npz)
    ddata = read_dataset(daily_data, period="daily")
    mdata = read_dataset(fluxval, period="monthly")
    fv_index = {str(s): i for i, s in enumerate(mdata.sites)}
    m_rows = {str(s): i for i, s in enumerate(msites)}
    common = [s for s in dsites.astype(str) if s in fv_index and s in m_rows]
    d_idx = [list(dsites.astype(str)).index(s) for s in common]
    months = np.asarray(mdata.time).astype("datetime64[M]")
    out = {}
    for label, (kind, row) in rows.items():
        if kind == "daily":
            src = {v: dpred[row][v][d_idx] for v in FLUXES}
            mm, mon = monthly_means(src, ddata.time, "uptake_positive")
            pos = {m: j for j, m in enumerate(mon)}
            field = {v: np.full((len(common), len(months)), np.nan) for v in FLUXES}
            for j, m in enumerate(months):
                if m in pos:
                    for v in FLUXES:
                        field[v][:, j] = mm[v][:, pos[m]]
        else:
            field = {v: mpred[row][v][[m_rows[s] for s in common]] for v in FLUXES}
        out[label] = field
    obs = {v: mdata.targets[v][[fv_index[s] for s in common]] for v in FLUXES}
    both = np.ones(obs["gpp"].shape, dtype=bool)
    for field in out.values():
        both &= np.isfinite(field["gpp"])
    return out, {v: np.where(both, o, np.nan) for v, o in obs.items()}, np.array(common)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("daily_predictions")
    ap.add_argument("daily_data")
    ap.add_argument("monthly_predictions")
    ap.add_argument("fluxval")
    ap.add_argument("--daily-row", default="tamrl")
    ap.add_argument("--monthly-row", default="tamrl")
    ap.add_argument("--markdown")
    ap.add_argument("--json")
    args = ap.parse_args(argv)
    rows = {"daily TAM-RL, monthly means": ("daily", args.daily_row),
            "monthly TAM-RL (checkpoint recipe)": ("monthly", args.monthly_row),
            "daily XGBoost, monthly means": ("daily", "xgboost"),
            "monthly XGBoost": ("monthly", "xgboost")}
    fields, obs, sites = aligned(args.daily_predictions, args.daily_data, args.monthly_predictions,
                                       args.fluxval, rows)
    n_pairs = int(np.isfinite(obs["gpp"]).sum())
    report = {"sites": sites.tolist(), "n_pairs": n_pairs, "rows": {}, "ratio": {}}
    for label, f in fields.items():
        report["rows"][label] = {v: flux_metrics(f[v], obs[v]) for v in FLUXES}
    ref = "monthly TAM-RL (checkpoint recipe)"
    for label in fields:
        if label != ref:
            report["ratio"][label] = {v: compare(fields[label][v], fields[ref][v], obs[v]) for v in FLUXES}
    command = "python scripts/monthly_from_daily.py " + shlex.join(argv if argv is not None else sys.argv[1:])
    lines = ["# Monthly fluxes at towers with daily data: the daily model's monthly means vs the monthly checkpoint",
             "", f"Made by `{command}`.", "",
             f"{len(sites)} FluxVal towers that are also daily towers, {n_pairs} (tower, month) pairs where every row "
             "predicts and FluxVal has an observation; every prediction is a CV held-out one (neither model saw the "
             "tower). Daily rows: calendar-month means of the daily model's days (months with every day predicted), "
             "driven by the tower's own daily meteorology; monthly rows: the monthly model on FluxVal's 0.5-degree "
             "monthly drivers. Scored against FluxVal's monthly observations, gC m-2 d-1.", "",
             "| row | GPP RMSE | GPP R2 | GPP bias | GPP med.site | NEE RMSE | NEE R2 | NEE med.site | Reco RMSE |",
             "|---|---|---|---|---|---|---|---|---|"]
    for label, r in report["rows"].items():
        g, n, e = r["gpp"], r["nee"], r["reco"]
        lines.append(f"| {label} | {g['rmse']:.3f} | {g['r2']:.3f} | {g['bias']:+.3f} | {g['median_site_rmse']:.3f} "
                     f"| {n['rmse']:.3f} | {n['r2']:.3f} | {n['median_site_rmse']:.3f} | {e['rmse']:.3f} |")
    lines += ["", f"RMSE ratio to the {ref} on the same pairs: pooled and median per tower, 90 % interval from "
              "resampling the towers (bold: below 1).", "",
              "| row | " + " | ".join(f"{NAMES[v]} pooled | {NAMES[v]} median per-site" for v in FLUXES) + " |",
              "|---|" + "---|---|" * len(FLUXES)]
    for label, r in report["ratio"].items():
        lines.append(f"| {label} | " + " | ".join(
            f"{fmt_ratio(r[v]['pooled_ratio'], r[v]['pooled_ratio_ci'])} | "
            f"{fmt_ratio(r[v]['median_site_ratio'], r[v]['median_site_ratio_ci'])}" for v in FLUXES) + " |")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.markdown:
        with open(args.markdown, "w") as fh:
            fh.write(text)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(report, fh, indent=1, default=float)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
