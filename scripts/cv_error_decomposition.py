"""Split a CV's pooled RMSE into site-mean bias, mean seasonal cycle and month-to-month anomaly parts.

    python scripts/cv_error_decomposition.py results/cv_fluxval_predictions.npz \
        ${TAMRL_SHARED}/data/fluxval/fluxval_monthly.nc

    python scripts/cv_error_decomposition.py results/cv_daily_predictions.npz ${TAMRL_SHARED}/data/fluxnet_daily

RMSE^2 = bias^2 + seasonal^2 + anomaly^2 exactly (pooled over held-out site-periods): the bias part is each site's
mean error, the seasonal part each site's mean error per calendar month minus its bias, the anomaly part the rest (for
daily data: the day-to-day part).
Also prints the per-site squared-error difference of each row against XGBoost for the sites where it is largest.
"""

from __future__ import annotations

import sys

import numpy as np

from tamrl_coupler.data.reader import data_period, read_dataset


def decompose(err: np.ndarray, month: np.ndarray) -> tuple[float, float, float, float]:
    ok = np.isfinite(err)
    n = ok.sum()
    sse = np.nansum(err**2)
    bias_sse = seas_sse = 0.0
    for s in range(err.shape[0]):
        if not ok[s].any():
            continue
        b = err[s, ok[s]].mean()
        bias_sse += ok[s].sum() * b**2
        for m in range(12):
            sel = ok[s] & (month == m)
            if sel.any():
                seas_sse += sel.sum() * (err[s, sel].mean() - b) ** 2
    anom = max(sse - bias_sse - seas_sse, 0.0)
    return tuple(float(np.sqrt(v / n)) for v in (sse, bias_sse, seas_sse, anom))


def main(pred_path: str, data_path: str) -> None:
    p = np.load(pred_path)
    data = read_dataset(data_path, period=data_period(data_path))  # daily tower folders too
    index = {str(s): i for i, s in enumerate(data.sites)}
    missing = [str(s) for s in p["site"] if str(s) not in index]
    if missing:
        sys.exit(f"{pred_path}: site(s) {missing[:5]} are not in {data_path}: predictions of another dataset?")
    rows = np.array([index[str(s)] for s in p["site"]])
    month = (data.time.astype("datetime64[M]").astype(int) % 12)
    names = sorted({k.split("/")[0] for k in p.files if "/" in k and "(" not in k})
    print(f"{'row':16s} {'var':4s} {'RMSE':>6s} {'bias':>6s} {'season':>6s} {'anomaly':>7s}")
    for var in ("gpp", "nee"):
        obs = data.targets[var][rows]
        for name in names:
            r = decompose(p[f"{name}/{var}"] - obs, month)
            print(f"{name:16s} {var:4s} " + " ".join(f"{v:6.3f}" for v in r))
    if "xgboost/gpp" in p.files:
        obs = data.targets["gpp"][rows]
        base = np.nansum((p["xgboost/gpp"] - obs) ** 2, axis=1)
        for name in (n for n in names if n != "xgboost"):
            d = np.nansum((p[f"{name}/gpp"] - obs) ** 2, axis=1) - base
            top = np.argsort(-d)[:5]
            print(f"{name}: GPP SSE minus XGBoost's, total {d.sum():+.0f}; largest at " +
                  ", ".join(f"{p['site'][i]} {d[i]:+.0f}" for i in top))


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: cv_error_decomposition.py CV_PREDICTIONS.npz FLUXVAL.nc")
    main(*sys.argv[1:3])
