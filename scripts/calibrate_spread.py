"""Fit the spread calibration on a CV's held-out predictions, report its coverage honestly, store it in a checkpoint.

    python scripts/calibrate_spread.py PREDICTIONS.npz DATA CHECKPOINT [--row tamrl] [--period monthly|daily]
        [--out CHECKPOINT_OUT] [--json REPORT.json] [--markdown REPORT.md]

PREDICTIONS.npz is what ``tamrl-coupler cv`` writes beside its results (``<output>_predictions.npz``: held-out
predictions per site, the fold of each site). Coverage is measured nested: for each fold the error model is fitted
on the other folds' held-out errors and applied to this fold, so every number is for sites the calibration never
saw. The model stored in the checkpoint is then fitted on all folds. Reported per flux: pooled coverage of
mean +- 1.645 sigma, spread/RMSE (RMS sigma over RMSE), per IGBP class, and the per-site coverage distribution.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys

import numpy as np

from tamrl_coupler.data.reader import read_dataset
from tamrl_coupler.model.calibration import FLUXES, SpreadCalibration, interval_coverage
from tamrl_coupler.model.checkpoint import load_checkpoint, save_checkpoint
from tamrl_coupler.vocabulary import igbp_index

Z90 = 1.645


def held_out(pred_path: str, data_path: str, row: str, period: str):
    """Predictions, observations, class index and fold on (site, time) of the dataset's sites in the npz."""
    p = np.load(pred_path)
    data = read_dataset(data_path, period=period)
    index = {str(s): i for i, s in enumerate(data.sites)}
    missing = [str(s) for s in p["site"] if str(s) not in index]
    if missing:
        sys.exit(f"{pred_path}: site(s) {missing[:5]} are not in {data_path}")
    rows = np.array([index[str(s)] for s in p["site"]])
    pred = {v: np.asarray(p[f"{row}/{v}"], dtype=np.float64) for v in FLUXES}
    obs = {v: data.targets[v][rows] for v in FLUXES}
    igbp = np.broadcast_to(igbp_index(data.igbp[rows])[:, None], pred["gpp"].shape)
    fold = np.broadcast_to(np.asarray(p["fold"])[:, None], pred["gpp"].shape)
    return pred, obs, igbp, fold, data.igbp[rows]


def nested_report(pred, obs, igbp, fold, site_class) -> dict:
    sig = {v: np.full(pred["gpp"].shape, np.nan) for v in FLUXES}
    for k in np.unique(fold):
        train = fold != k
        cal = SpreadCalibration.fit({v: np.where(train, pred[v], np.nan) for v in FLUXES}, obs, igbp)
        s = cal.sigma(pred["gpp"], pred["reco"], igbp)
        for v in FLUXES:
            sig[v][fold == k] = s[v][fold == k]
    report = {}
    for v in FLUXES:
        ok = np.isfinite(obs[v]) & np.isfinite(pred[v])
        err = pred[v] - obs[v]
        inside = np.abs(err) <= Z90 * sig[v]
        per_site = np.array([inside[i][ok[i]].mean() for i in range(len(ok)) if ok[i].sum() >= 6])
        by_class = {}
        for c in sorted(set(site_class.tolist())):
            m = ok & (site_class == c)[:, None]
            if m.any():
                by_class[str(c) or "unknown"] = {
                    "coverage": float(inside[m].mean()),
                    "spread_over_rmse": float(np.sqrt(np.mean(sig[v][m] ** 2)) / np.sqrt(np.mean(err[m] ** 2)))}
        report[v] = {"coverage": interval_coverage(pred[v], sig[v], obs[v], Z90),
                     "spread_over_rmse": float(np.sqrt(np.mean(sig[v][ok] ** 2)) / np.sqrt(np.mean(err[ok] ** 2))),
                     "site_coverage_q10_q25_q50": [float(q) for q in np.quantile(per_site, [0.1, 0.25, 0.5])],
                     "by_igbp": by_class}
    return report


def markdown_report(report: dict, command: str, title: str) -> str:
    """The nested coverage report as a results page: pooled, per-site quantiles, per IGBP class."""
    lines = [f"# {title}", "", f"Made by `{command}`.", "",
             "Nested over the CV folds: each fold's spreads come from an error model fitted on the other folds' "
             "held-out errors, so every figure is for sites neither the network nor the calibration saw. Target: "
             "mean +- 1.645 spread covers 85-95 % of observations, spread/RMSE 0.7-1.3.", "",
             "| flux | coverage of mean +- 1.645 spread | spread / RMSE | per-site coverage q10 / q25 / q50 |",
             "|---|---|---|---|"]
    for v in FLUXES:
        r = report[v]
        q = " / ".join(f"{x:.2f}" for x in r["site_coverage_q10_q25_q50"])
        name = {"gpp": "GPP", "reco": "Reco", "nee": "NEE"}[v]
        lines.append(f"| {name} | {r['coverage']:.3f} | {r['spread_over_rmse']:.2f} | {q} |")
    lines += ["", "Per IGBP class: coverage (spread / RMSE).", "",
              "| class | " + " | ".join("GPP" if v == "gpp" else "Reco" if v == "reco" else "NEE" for v in FLUXES)
              + " |", "|---|" + "---|" * len(FLUXES)]
    for c in report[FLUXES[0]]["by_igbp"]:
        cells = []
        for v in FLUXES:
            d = report[v]["by_igbp"].get(c)
            cells.append(f"{d['coverage']:.2f} ({d['spread_over_rmse']:.2f})" if d else "-")
        lines.append(f"| {c} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("predictions")
    ap.add_argument("data")
    ap.add_argument("checkpoint")
    ap.add_argument("--row", default="tamrl", help="the CV row whose predictions to calibrate (default tamrl)")
    ap.add_argument("--period", default="monthly", choices=("monthly", "daily"))
    ap.add_argument("--out", help="checkpoint to write (default: overwrite CHECKPOINT)")
    ap.add_argument("--json", help="write the nested coverage report here")
    ap.add_argument("--markdown", help="write the nested coverage report as a results page here")
    ap.add_argument("--title", default="Spread calibration on held-out sites", help="the results page's title")
    args = ap.parse_args(argv)
    pred, obs, igbp, fold, site_class = held_out(args.predictions, args.data, args.row, args.period)
    report = nested_report(pred, obs, igbp, fold, site_class)
    for v in FLUXES:
        r = report[v]
        print(f"{v:4s} coverage {r['coverage']:.3f}  spread/RMSE {r['spread_over_rmse']:.2f}  per-site coverage "
              f"q10/q25/q50 {' / '.join(f'{q:.2f}' for q in r['site_coverage_q10_q25_q50'])}")
        print("     by class: " + ", ".join(f"{c} {d['coverage']:.2f} ({d['spread_over_rmse']:.2f})"
                                         for c, d in r["by_igbp"].items()))
    ens = load_checkpoint(args.checkpoint)
    cal = SpreadCalibration.fit(pred, obs, igbp, fitted_on=f"{args.predictions} ({args.row} held-out predictions, "
                                                          f"{len(np.unique(fold))} folds)")
    ens.meta.calibration = cal.to_dict()
    ens.meta.extra["spread_calibration_report"] = report
    out = save_checkpoint(ens, args.out or args.checkpoint)
    print(f"wrote {out}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(report, fh, indent=1)
    if args.markdown:
        command = "python scripts/calibrate_spread.py " + shlex.join(argv if argv is not None else sys.argv[1:])
        with open(args.markdown, "w") as fh:
            fh.write(markdown_report(report, command, args.title))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
