"""Fit the error-correlation model (temporal e-folding time, spatial correlation length) of a CV's held-out daily
errors, write the fit's data, table and figure to results/, and the small JSON the prior files carry into the package.

    python scripts/fit_error_correlation.py PREDICTIONS.npz DATA [--row tamrl] [--flux nee]
        [--results results/error_correlation_daily] [--bootstrap 200]
        [--ship tamrl_coupler/checkpoints/tamrl_daily_error_correlation.json]

PREDICTIONS.npz is what ``tamrl-coupler cv`` writes beside its results (held-out predictions per site and day; every
site predicted by models that never saw it or a tower within 5 km of it). DATA is the dataset the CV ran on (for the
observations and the towers' positions). The method is ``tamrl_coupler.training.error_correlation``; the anchors are
Chevallier et al. (2012, Global Biogeochem. Cycles 26, GB1021, doi:10.1029/2010GB003974): daily model-tower error SD
about 2.5 gC m-2 d-1, autocorrelation above 0.3 up to about four weeks, spatial correlation below 0.2 beyond about
200 km.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
from pathlib import Path

import numpy as np

from tamrl_coupler.atomicfile import write_text_atomic
from tamrl_coupler.data.reader import read_dataset
from tamrl_coupler.model.identity import file_sha256
from tamrl_coupler.products.figures import pyplot, save_png
from tamrl_coupler.training.error_correlation import ErrorCorrelation, fit_error_correlation

ANCHOR = ("Chevallier, F. et al. (2012) What eddy-covariance measurements tell us about prior land flux errors in "
          "CO2-flux inversion schemes, Global Biogeochem. Cycles 26, GB1021, doi:10.1029/2010GB003974: daily "
          "model-tower error SD about 2.5 gC m-2 d-1, autocorrelation > 0.3 up to about 4 weeks, spatial correlation "
          "< 0.2 beyond about 200 km")


def held_out(pred_path: str, data_path: str, row: str, flux: str):
    """(obs, pred, time, lat, lon, sites) on the npz's sites, aligned with the dataset."""
    p = np.load(pred_path)
    key = f"{row}/{flux}"
    if key not in p.files:
        rows = sorted({k.split("/")[0] for k in p.files if "/" in k})
        sys.exit(f"{pred_path}: no row {row!r} with flux {flux!r}; rows: {rows}")
    data = read_dataset(data_path, period="daily")
    index = {str(s): i for i, s in enumerate(data.sites)}
    missing = [str(s) for s in p["site"] if str(s) not in index]
    if missing:
        sys.exit(f"{pred_path}: site(s) {missing[:5]} are not in {data_path}: predictions of another dataset?")
    if len(p["time"]) != len(data.time) or str(p["time"][0]) != str(data.time[0].astype("datetime64[D]")):
        sys.exit(f"{pred_path}: its time axis ({p['time'][0]}.., {len(p['time'])} days) is not the dataset's")
    rows = np.array([index[str(s)] for s in p["site"]])
    return (data.targets[flux][rows], np.asarray(p[key], np.float64), data.time.astype("datetime64[D]"),
            data.lat[rows], data.lon[rows], [str(s) for s in p["site"]])


def shown(path: str) -> str:
    """A path as the recorded command shows it: the shared data as ${TAMRL_SHARED}/..., a file outside the
    repository by its name (its digest is recorded beside)."""
    p = Path(path).resolve()
    shared = Path(os.environ.get("TAMRL_SHARED", Path(__file__).resolve().parents[1].parent / "shared")).resolve()
    repo = Path(__file__).resolve().parents[1]
    if p.is_relative_to(shared):
        return "${TAMRL_SHARED}/" + str(p.relative_to(shared))
    if p.is_relative_to(repo):
        return str(p.relative_to(repo))
    return p.name


def largest_pair_correlation(fit: ErrorCorrelation, beyond_km: float = 0.0) -> float:
    """The largest bin correlation (weighted by common days) of tower pairs beyond ``beyond_km``."""
    tab = fit.spatial.table
    return max(v for v, lo in zip(tab["r_weighted"], tab["km_from"], strict=True) if v is not None and lo >= beyond_km)


def shipped(fit: ErrorCorrelation, row: str) -> dict:
    """The compact form the prior files carry (numbers, not tables). The spatial model shipped is the pure
    exponential (correlation 1 at zero distance): the free fit's correlated share is small and its length not
    constrained, so a length without its share would read as a strong correlation that the towers do not show."""
    t, s, p = fit.temporal, fit.spatial, fit.spatial_pure
    note = (f"tower errors are nearly uncorrelated in space: tower-pair correlations of daily error anomalies are at "
            f"most {largest_pair_correlation(fit):.2f} in any distance bin (7 pairs within 5 km) and "
            f"{largest_pair_correlation(fit, 200.0):.2f} beyond 200 km; as exp(-d/L) with correlation 1 at zero "
            f"distance, L = {p.scale:.2g} km; with a free correlated share c_s exp(-d/L), c_s = {s.fraction:.2f} "
            f"(90 % {s.fraction_ci90[0]:.2f}-{s.fraction_ci90[1]:.2f}) and L is not constrained "
            f"({s.scale_ci90[0]:.0f}-{s.scale_ci90[1]:.0f} km). Towers do not constrain the error correlation of "
            "grid-cell means, which average over more landscape: a system that needs one chooses it")
    return {
        "model": "separable exponential",
        "formula": "corr(e(x1,t1), e(x2,t2)) = [b_t + c_t exp(-|t1-t2| / tau)] * [c_s exp(-d / L)] (1 on the diagonal)",
        "flux": fit.flux, "period": fit.period, "checkpoint": "tamrl_daily.npz", "cv_row": row,
        "deseasonalised": fit.deseasonalised,
        "temporal_efolding_days": round(t.scale, 2), "temporal_efolding_days_ci90": [round(v, 2) for v in t.scale_ci90],
        "temporal_decaying_share": round(t.fraction, 3), "temporal_persistent_share": round(t.offset, 3),
        "spatial_length_km": round(p.scale, 3), "spatial_length_km_ci90": [round(v, 3) for v in p.scale_ci90],
        "spatial_share": 1.0, "spatial_note": note,
        "spatial_free_share": round(s.fraction, 3), "spatial_free_share_ci90": [round(v, 3) for v in s.fraction_ci90],
        "spatial_free_length_km": round(s.scale, 1), "spatial_free_length_km_ci90": [round(v, 1) for v in s.scale_ci90],
        "tower_pairs": s.table["pairs_used_in_fit"], "tower_pairs_within_200km": int(sum(
            n for n, hi in zip(s.table["pairs"], s.table["km_to"], strict=True) if hi <= 200.0)),
        "error_sd_gC_m2_d1": round(fit.error_sd, 3), "rms_error_gC_m2_d1": round(fit.rms_error, 3),
        "site_bias_sd_gC_m2_d1": round(fit.site_bias_sd, 3), "n_sites": fit.n_sites, "n_site_days": fit.n_days,
        "fitted_at": "tower scale (daily fluxes at single eddy-covariance towers, held out in grouped CV)",
        "results": "results/error_correlation_daily.md", "source": fit.source, "anchor": ANCHOR,
    }


def figure(fit: ErrorCorrelation, other: ErrorCorrelation, path: Path) -> Path:
    plt = pyplot()
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4.2))
    for f, style, name in ((fit, "o", "residuals (site means kept)"), (other, "x", "deseasonalised")):
        lag = np.asarray(f.temporal.table["lag_days"], float)
        r = np.array([np.nan if v is None else v for v in f.temporal.table["r"]])
        a.plot(lag[1:], r[1:], style, ms=3, label=f"{name}: pooled lag correlation")
        t = f.temporal
        x = np.linspace(1, lag[-1], 200)
        a.plot(x, t.offset + t.fraction * np.exp(-x / t.scale), "-",
               label=f"fit: {t.offset:.2f} + {t.fraction:.2f} exp(-lag/{t.scale:.1f} d)")
    a.axhline(0.3, color="grey", lw=0.8, ls=":")
    a.axvline(28, color="grey", lw=0.8, ls=":")
    a.set(xlabel="lag (days)", ylabel="correlation of daily NEE errors", title="in time (held-out towers)")
    a.legend(fontsize=7)
    s = fit.spatial
    tab = s.table
    mids = [m for m in tab["mean_km"]]
    rw = [v for v in tab["r_weighted"]]
    have = [i for i, m in enumerate(mids) if m is not None]
    b.plot([mids[i] for i in have], [rw[i] for i in have], "s", color="C0", label="binned (weighted by common days)")
    for i in have:
        b.annotate(f"{tab['pairs'][i]}", (mids[i], rw[i]), fontsize=7, xytext=(3, 3), textcoords="offset points")
    x = np.logspace(0, np.log10(tab["max_km_fitted"]), 200)
    b.plot(x, s.fraction * np.exp(-x / s.scale), "-", color="C1",
           label=f"free share: {s.fraction:.2f} exp(-d/{s.scale:.0f} km), 90% L {ci(s.scale_ci90, '.0f')}")
    p = fit.spatial_pure
    b.plot(x, np.exp(-x / p.scale), "--", color="C2", label=f"shipped: exp(-d/{p.scale:.2g} km)")
    b.axhline(0.2, color="grey", lw=0.8, ls=":")
    b.axvline(200, color="grey", lw=0.8, ls=":")
    b.set(xscale="log", xlabel="tower distance (km)", ylabel="correlation of daily NEE error anomalies",
          title="in space (tower pairs; numbers: pairs per bin)", ylim=(-0.1, 0.3))
    b.legend(fontsize=7)
    fig.tight_layout()
    return save_png(fig, path, dpi=110, what="error-correlation figure")


def fmt(v: float | None, spec: str) -> str:
    return "" if v is None else format(v, spec)


def ci(pair: tuple[float, float], spec: str) -> str:
    return f"{pair[0]:{spec}}-{pair[1]:{spec}}"


def markdown(fit: ErrorCorrelation, other: ErrorCorrelation, command: str, small: dict) -> str:
    t, s = fit.temporal, fit.spatial
    lines = [f"# Error correlation of the daily model's held-out {fit.flux.upper()} errors", "", "Made by:", "",
             "```", command, "```", "",
             f"{fit.n_sites} towers, {fit.n_days} held-out site-days (grouped 5-fold CV, co-located towers in one "
             "fold). Residual = observed minus predicted daily NEE (uptake positive), gC m-2 d-1. Method: "
             "`tamrl_coupler/training/error_correlation.py`; intervals: 90 % site bootstrap "
             f"({t.n_bootstrap} resamples).", "",
             "**Which residuals.** Not deseasonalised: the seasonal error is part of what an inversion corrects and "
             "it is what carries the correlation over weeks. Each site's mean error is kept in the lag correlation "
             "(no mean is estimated, so short records do not bias it low) and fitted as a persistent share; the "
             "deseasonalised variant (each site's mean error per calendar month taken out) is the sensitivity row.",
             "", "## Fitted model (shipped with the daily checkpoint, carried by every prior file)", "",
             "| quantity | value | 90 % interval |", "|---|---|---|",
             f"| daily error SD (gC m-2 d-1) | {fit.error_sd:.2f} (RMS {fit.rms_error:.2f}) | |",
             f"| SD of the site-mean errors (gC m-2 d-1) | {fit.site_bias_sd:.2f} | |",
             f"| temporal e-folding time tau (days) | {t.scale:.1f} | {ci(t.scale_ci90, '.1f')} |",
             f"| share decaying with tau, c_t | {t.fraction:.2f} | {ci(t.fraction_ci90, '.2f')} |",
             f"| persistent share (site biases), b_t | {t.offset:.2f} | {ci(t.offset_ci90, '.2f')} |",
             f"| spatial correlation length L, pure exponential (c_s = 1; shipped) (km) | "
             f"{fit.spatial_pure.scale:.2g} | {ci(fit.spatial_pure.scale_ci90, '.2g')} |",
             f"| free fit: correlated share at d -> 0, c_s | {s.fraction:.2f} | {ci(s.fraction_ci90, '.2f')} |",
             f"| free fit: its length L (km) | {s.scale:.0f} | {ci(s.scale_ci90, '.0f')} |",
             "", f"**In space: no correlation the towers can show.** {small['spatial_note']}.", "",
             f"Tower pairs in the spatial fit: {s.table['pairs_used_in_fit']} (distance <= "
             f"{s.table['max_km_fitted']:.0f} km, >= {s.table['min_overlap_days']} common days); "
             f"{small['tower_pairs_within_200km']} of them within 200 km.", "",
             "Deseasonalised (sensitivity): "
             f"tau {other.temporal.scale:.1f} d ({ci(other.temporal.scale_ci90, '.1f')}),"
             f" c_t {other.temporal.fraction:.2f}, b_t {other.temporal.offset:.2f}; L {other.spatial.scale:.0f} km "
             f"({ci(other.spatial.scale_ci90, '.0f')}), c_s {other.spatial.fraction:.2f}.",
             "", "## Against the anchors", "", f"{ANCHOR}.", "",
             "| anchor | ours |", "|---|---|",
             f"| error SD ~2.5 gC m-2 d-1 | {fit.error_sd:.2f} |"]
    lag = t.table["lag_days"]
    r = t.table["r"]
    above = [k for k in lag[1:] if r[k] is not None and r[k] > 0.3]
    last = max(above) if above else 0
    lines.append(f"| autocorrelation > 0.3 up to ~4 weeks | > 0.3 up to lag {last} d (lag 28: {r[28]:.2f}) |")
    far = [(n, v) for n, v, lo in zip(s.table["pairs"], s.table["r_weighted"], s.table["km_from"], strict=True)
           if lo >= 200.0 and v is not None]
    if far:
        npairs = sum(n for n, _ in far)
        mean = sum(n * v for n, v in far) / npairs
        lines.append(f"| spatial correlation < 0.2 beyond ~200 km | {mean:.2f} (pair-weighted mean of the bins beyond "
                     f"200 km, {npairs} pairs) |")
    lines += ["", "## Lag correlation (pooled over sites)", "", "| lag (days) | r | day pairs |", "|---|---|---|"]
    for k in (1, 2, 3, 5, 7, 10, 14, 21, 28, 35, 42, 60, 90):
        if k < len(lag) and r[k] is not None:
            lines.append(f"| {k} | {r[k]:.3f} | {t.table['pairs'][k]} |")
    lines += ["", "## Tower pairs by distance", "",
              "| distance (km) | pairs | mean distance | mean r | r weighted by common days |", "|---|---|---|---|---|"]
    tab = s.table
    for i in range(len(tab["pairs"])):
        lines.append(f"| {tab['km_from'][i]:.0f}-{tab['km_to'][i]:.0f} | {tab['pairs'][i]} | "
                     f"{fmt(tab['mean_km'][i], '.0f')} | {fmt(tab['r_mean'][i], '.3f')} | "
                     f"{fmt(tab['r_weighted'][i], '.3f')} |")
    lines += ["", "Few towers are close to each other: the shortest bins rest on a handful of pairs (co-located "
              "towers share weather and often drivers, so their errors agree more than independent 1-degree cells "
              "would), and the site bootstrap treats sites as independent although nearby towers are not, so the "
              "intervals are, if anything, too narrow. The length applies at tower scale; at the scale of a grid "
              "cell errors average over more landscape and are expected to correlate over longer distances.", "",
              "![error correlation](error_correlation_daily.png)", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("predictions")
    ap.add_argument("data")
    ap.add_argument("--row", default="tamrl")
    ap.add_argument("--flux", default="nee")
    ap.add_argument("--results", default="results/error_correlation_daily")
    ap.add_argument("--ship", default="tamrl_coupler/checkpoints/tamrl_daily_error_correlation.json")
    ap.add_argument("--bootstrap", type=int, default=200)
    args = ap.parse_args(argv)
    shown_args = [shown(a) if Path(a).exists() else shlex.quote(a) for a in (argv or sys.argv[1:])]
    command = "python scripts/fit_error_correlation.py " + " ".join(shown_args)
    obs, pred, time, lat, lon, sites = held_out(args.predictions, args.data, args.row, args.flux)
    source = {"predictions": Path(args.predictions).name, "predictions_sha256": file_sha256(args.predictions),
              "row": args.row, "data": Path(args.data).name, "command": command}
    fits = {}
    for des in (False, True):
        fits[des] = fit_error_correlation(obs, pred, time, lat, lon, flux=args.flux, deseasonalise=des,
                                          n_bootstrap=args.bootstrap, source=source)
    fit = fits[False]
    small = shipped(fit, args.row)
    out = Path(args.results)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out.with_suffix(".json"), json.dumps(
        {"command": command, "sites": sites, "fit": fit.to_dict(), "deseasonalised": fits[True].to_dict(),
         "shipped": small}, indent=1), "error-correlation results")
    figure(fit, fits[True], out.with_suffix(".png"))
    write_text_atomic(out.with_suffix(".md"), markdown(fit, fits[True], command, small), "error-correlation table")
    write_text_atomic(Path(args.ship), json.dumps(small, indent=1) + "\n", "shipped error-correlation model")
    print(f"tau {fit.temporal.scale:.1f} d {fit.temporal.scale_ci90}, L {fit.spatial.scale:.0f} km "
          f"{fit.spatial.scale_ci90}; wrote {out}.md/.json/.png and {args.ship}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
