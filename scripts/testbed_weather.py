"""The test bed's synthetic weather, measured and checked on the shared daily towers.

    python scripts/testbed_weather.py ${TAMRL_SHARED:-../shared}/data/fluxnet_daily --output results/testbed_weather

1. The day-to-day statistics the generator's parameters come from (physics/climatology.py: WeatherParameters):
   wet days (>= 1 mm) against the monthly amount, a wet day's shortwave and VPD over the month's mean, the
   coefficients of variation and lag-1 autocorrelations within months (medians over site-months).
2. Why the test bed needs weather, and whether the generator gives it: the daily checkpoint run at every tower (its
   drivers tmean, swdown, vpd, precip; CO2 390 ppm; no land cover or other optional drivers, as on the global test
   bed) (a) on the tower's real days, (b) on smooth days from the tower's own monthly normals, (c) on smooth days
   with one driver's real day-to-day variation put back, and (d) on the generator's days from the same normals; the
   ratio of mean GPP to (a). (b) and (d) run three years and use the third, as the test bed does.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from tamrl_coupler.data.reader import read_dataset
from tamrl_coupler.model import load_checkpoint
from tamrl_coupler.model.inference import predict_drivers
from tamrl_coupler.physics import climatology as clim

KEEP = ("tmean", "swdown", "vpd", "precip")


def statistics(data) -> dict[str, float]:
    d = data.drivers
    ym = data.time.astype("datetime64[M]").astype(np.int64)
    rows = []
    for s in range(data.n_sites):
        for m in np.unique(ym):
            i = ym == m
            p, sw, v = d["precip"][s, i], d["swdown"][s, i], d["vpd"][s, i]
            ok = np.isfinite(p) & np.isfinite(sw) & np.isfinite(v)
            if ok.sum() < 25:
                continue
            p, sw, v = p[ok], sw[ok], v[ok]
            wet = p >= 1.0
            both = 2 <= wet.sum() <= wet.size - 2
            with np.errstate(invalid="ignore", divide="ignore"):
                rows.append((p.mean() * ok.sum(), wet.mean(), sw[wet].mean() / sw.mean() if both else np.nan,
                             v[wet].mean() / v.mean() if both else np.nan, np.std(sw) / sw.mean(),
                             np.std(v) / v.mean(), np.corrcoef(sw[1:], sw[:-1])[0, 1],
                             np.corrcoef(v[1:], v[:-1])[0, 1]))
    r = np.array(rows)
    from scipy.optimize import minimize_scalar

    fit = minimize_scalar(lambda sc: np.mean((r[:, 1] - (1 - np.exp(-r[:, 0] / sc))) ** 2), bounds=(5, 500),
                          method="bounded")
    return {"site_months": int(len(r)), "wet_scale_mm": float(fit.x),
            "wet_day_sw_ratio": float(np.nanmedian(r[:, 2])), "wet_day_vpd_ratio": float(np.nanmedian(r[:, 3])),
            "cv_sw": float(np.nanmedian(r[:, 4])), "cv_vpd": float(np.nanmedian(r[:, 5])),
            "rho_sw": float(np.nanmedian(r[:, 6])), "rho_vpd": float(np.nanmedian(r[:, 7]))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data")
    ap.add_argument("--output", default="results/testbed_weather")
    args = ap.parse_args()
    data = read_dataset(args.data, period="daily")
    stats = statistics(data)
    ens = load_checkpoint("daily")
    names = ens.meta.driver_names
    n_s, n_t = data.n_sites, len(data.time)
    x = np.full((n_s, n_t, len(names)), np.nan, dtype=np.float32)
    for j, n in enumerate(names):
        if n in KEEP:
            x[:, :, j] = data.drivers[n]
    x[:, :, names.index("co2")] = 390.0
    ok = np.isfinite(x[:, :, [names.index(k) for k in KEEP]]).all(-1)
    month = data.time.astype("datetime64[M]").astype(np.int64) % 12
    normals = {k: np.stack([np.nanmean(np.where(ok, data.drivers[k], np.nan)[:, month == m], axis=1)
                            for m in range(12)]) for k in KEEP}
    smooth = {"tmean": clim.monthly_to_daily(normals["tmean"]),
              **{k: clim.monthly_to_daily(normals[k], non_negative=True) for k in ("swdown", "vpd", "precip")}}

    def mean_gpp(f: dict) -> float:  # each tower's mean over its days with drivers, then the mean over towers
        return float(np.nanmean(np.nanmean(np.where(ok, f["gpp"], np.nan), axis=1)))

    real = mean_gpp(predict_drivers(ens, x, data.time[0], data.lat))

    def climatological(days: dict) -> float:
        xs = np.full((n_s, 365 * 3, len(names)), np.nan, dtype=np.float32)
        for j, n in enumerate(names):
            if n in days:
                xs[:, :, j] = np.tile(np.nan_to_num(days[n]).T, (1, 3))
        xs[:, :, names.index("co2")] = 390.0
        f = predict_drivers(ens, xs, np.datetime64("2001-01-01"), data.lat)
        return float(np.mean(f["gpp"][:, -365:]))  # each tower's third year, then the mean over towers

    rows = {"real days": 1.0, "smooth days (no weather)": climatological(smooth) / real}
    synthetic = clim.synthetic_weather({k: smooth[k] for k in ("tmean", "swdown", "vpd")}, normals["precip"])
    for k in KEEP:
        rows[f"smooth days, {k} with the generator's weather"] = climatological({**smooth, k: synthetic[k]}) / real
    rows["the generator's days (all drivers)"] = climatological(synthetic) / real
    out = {"command": " ".join(["python", *sys.argv]), "towers": n_s, "statistics": stats,
           "parameters": clim.WeatherParameters().__dict__, "gpp_ratio_to_real_days": rows,
           "real_days_mean_gpp": real}
    stem = Path(args.output)
    stem.with_suffix(".json").write_text(json.dumps(out, indent=1))
    p = clim.WeatherParameters()
    lines = ["# The test bed's synthetic weather, measured and checked on the daily towers", "",
             f"Made by `{out['command']}` ({n_s} towers; the shipped daily checkpoint).", "",
             "## Day-to-day statistics (median over site-months) and the generator's parameters", "",
             "| statistic | towers | generator |", "|---|---|---|",
             f"| wet days (>= 1 mm): fraction = 1 - exp(-monthly mm / scale), scale | {stats['wet_scale_mm']:.0f} mm | "
             f"{p.wet_scale_mm:g} mm |",
             f"| a wet day's shortwave over the month's mean | {stats['wet_day_sw_ratio']:.2f} | "
             f"{p.wet_ratio_base:g} + "
             f"{p.wet_ratio_slope:g} x wet fraction |",
             f"| a wet day's VPD over the month's mean | {stats['wet_day_vpd_ratio']:.2f} | the same |",
             f"| coefficient of variation of daily shortwave / VPD | {stats['cv_sw']:.2f} / {stats['cv_vpd']:.2f} | "
             f"wet/dry contrast + log-normal noise sigma {p.sw_sigma:g} / {p.vpd_sigma:g} |",
             f"| lag-1 autocorrelation of shortwave / VPD | {stats['rho_sw']:.2f} / {stats['rho_vpd']:.2f} | "
             f"{p.sw_rho:g} / {p.vpd_rho:g} |", "",
             "## Mean GPP at the towers against the same model on their real days", "",
             f"Real days: {365.25 * real:.0f} gC m-2 yr-1 (the mean over towers of each tower's mean; drivers tmean, "
             "swdown, vpd, precip, CO2 "
             "390 ppm, as on the global test bed).", "", "| days | GPP / GPP on real days |", "|---|---|"]
    lines += [f"| {k} | {v:.3f} |" for k, v in rows.items()]
    stem.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
