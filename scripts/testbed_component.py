"""The global test bed through the coupled component: its monthly global totals against `predict`'s on the same days.

    tamrl-coupler testbed --write-forcing --years 1 --subdaily-months 3 -o testbed_out
    (cd testbed_out && tamrl-coupler run testbed_run.yaml --output run_out)
    tamrl-coupler predict --data testbed_out/testbed_daily.nc --checkpoint daily -o testbed_out/predict.nc
    python scripts/testbed_component.py testbed_out/run_out/testbed_20010101T000000.nc testbed_out/predict.nc \
        --output results/testbed_component

The component steps the 3-hourly forcing (model cells = the test bed's 1-degree land cells, the daily model
evaluated through the day, committed at each day's end); `predict` reads the daily drivers those steps average to.
Both files carry their global totals per calendar month (physics/totals.py); the table compares them, and the daily
fluxes cell by cell.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import netCDF4
import numpy as np


def monthly(path: Path) -> dict[str, list[float]]:
    with netCDF4.Dataset(path) as ds:
        labels = str(ds.getncattr("totals_monthly_labels")).split()
        out = {"labels": labels}
        for k in ("gpp", "reco", "nee"):
            out[k] = [float(v) for v in str(ds.getncattr(f"totals_monthly_{k}_PgC")).split()]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run_flux_file")
    ap.add_argument("predict_file")
    ap.add_argument("--output", default="results/testbed_component")
    args = ap.parse_args()
    comp, pred = monthly(Path(args.run_flux_file)), monthly(Path(args.predict_file))
    n = len(comp["labels"])
    with netCDF4.Dataset(args.run_flux_file) as ds:
        days = np.asarray(ds["time_bnds"][:, 1] - ds["time_bnds"][:, 0])
        every = int(round(86400.0 / float(np.median(days))))  # records per day (the run's output.every)
        g = np.ma.filled(ds["gpp"][:], np.nan).astype(np.float64)
    with netCDF4.Dataset(args.predict_file) as ds:
        pg = np.ma.filled(ds["gpp"][:], np.nan).astype(np.float64).T  # (time, site)
    cell = {}
    if every == 1:  # one record per day: the daily means themselves
        d = min(g.shape[0], pg.shape[0])
        diff = np.abs(g[:d] - pg[:d])
        cell = {"days": int(d), "max_abs_diff_gpp": float(np.nanmax(diff)),
                "rms_rel_diff_gpp": float(np.sqrt(np.nanmean(diff ** 2)) / np.nanmean(np.abs(pg[:d])))}
    rows = []
    for i in range(n):
        rows.append({k: (comp[k][i], pred[k][i], comp[k][i] / pred[k][i] - 1 if pred[k][i] else float("nan"))
                     for k in ("gpp", "reco", "nee")} | {"month": comp["labels"][i]})
    out = {"command": " ".join(["python", *sys.argv]), "rows": rows, "cells": cell}
    stem = Path(args.output)
    stem.with_suffix(".json").write_text(json.dumps(out, indent=1))
    lines = ["# The global test bed through the coupled component, against predict", "",
             f"Made by `{out['command']}` (the commands in the script's docstring). PgC per month, land-fraction "
             "weighted, NEE = GPP - Reco; relative difference component / predict - 1.", "",
             "| month | GPP component | GPP predict | diff | Reco component | Reco predict | diff | NEE component | "
             "NEE predict | diff |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['month']} | " + " | ".join(f"{r[k][0]:.4f} | {r[k][1]:.4f} | {r[k][2]:+.1e}"
                                                       for k in ("gpp", "reco", "nee")) + " |")
    if cell:
        lines += ["", f"Daily GPP cell by cell over {cell['days']} days: largest difference "
                      f"{cell['max_abs_diff_gpp']:.2e} gC m-2 d-1, RMS {cell['rms_rel_diff_gpp']:.1e} of the mean."]
    stem.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
