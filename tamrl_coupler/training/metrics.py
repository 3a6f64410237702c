"""Site-level evaluation metrics: pooled RMSE, R2, bias, median per-site RMSE; overall and per IGBP class."""

from __future__ import annotations

import numpy as np

from tamrl_coupler import vocabulary
from tamrl_coupler.physics.carbon import SignConvention, nee_from_components

VARIABLES = tuple(vocabulary.TARGETS)


def pooled_metrics(pred: np.ndarray, obs: np.ndarray) -> dict[str, float]:
    """n, RMSE, R2 and bias of ``pred`` against ``obs`` (any shape), pooled over the pairs where both are finite."""
    ok = np.isfinite(pred) & np.isfinite(obs)
    n = int(ok.sum())
    if n == 0:
        return {"n": 0, "rmse": float("nan"), "r2": float("nan"), "bias": float("nan")}
    err = (pred - obs)[ok]
    o = obs[ok]
    sst = float(((o - o.mean()) ** 2).sum())
    return {
        "n": n,
        "rmse": float(np.sqrt(np.mean(err**2))),
        "r2": float(1.0 - (err**2).sum() / sst) if sst > 0 else float("nan"),
        "bias": float(err.mean()),
    }


def flux_metrics(pred: np.ndarray, obs: np.ndarray, min_site_obs: int = 6) -> dict[str, float]:
    """pred, obs (S, T); periods where either is NaN are ignored. Pooled over all (site, period) pairs, plus the
    median over sites (with at least ``min_site_obs`` pairs) of each site's RMSE."""
    out = pooled_metrics(pred, obs)
    if out["n"] == 0:
        return {**out, "median_site_rmse": float("nan"), "n_sites": 0}
    ok = np.isfinite(pred) & np.isfinite(obs)
    site_rmse = [float(np.sqrt(np.mean((pred[s] - obs[s])[ok[s]] ** 2))) for s in range(obs.shape[0])
                 if ok[s].sum() >= min_site_obs]
    return {**out, "median_site_rmse": float(np.median(site_rmse)) if site_rmse else float("nan"),
            "n_sites": len(site_rmse)}


def metrics_table(pred: dict[str, np.ndarray], obs: dict[str, np.ndarray], igbp: np.ndarray,
                  min_site_obs: int = 6) -> dict:
    """{"all": {var: metrics}, "by_igbp": {class: {var: metrics}}} for the variables both dicts hold."""
    names = [v for v in VARIABLES if v in pred and v in obs]
    table = {"all": {v: flux_metrics(pred[v], obs[v], min_site_obs) for v in names}, "by_igbp": {}}
    for cls in sorted(set(igbp.tolist())):
        idx = np.flatnonzero(igbp == cls)
        table["by_igbp"][cls] = {v: flux_metrics(pred[v][idx], obs[v][idx], min_site_obs) for v in names}
    return table


def balance_violation(gpp: np.ndarray, reco: np.ndarray, nee: np.ndarray,
                      convention: SignConvention | str = "uptake_positive") -> dict[str, float]:
    """How far reported NEE is from the balance with the reported components (gC m-2 d-1)."""
    r = nee - nee_from_components(gpp, reco, convention)
    r = r[np.isfinite(r)]
    if r.size == 0:
        return {"rms": float("nan"), "max_abs": float("nan")}
    return {"rms": float(np.sqrt(np.mean(r**2))), "max_abs": float(np.abs(r).max())}


def format_table(table: dict, variables: tuple[str, ...] = VARIABLES) -> str:
    """A plain-text table of the overall metrics (for the evaluate command)."""
    lines = [f"{'var':6s} {'n':>6s} {'RMSE':>8s} {'R2':>7s} {'bias':>8s} {'med.site RMSE':>14s}"]
    for v in variables:
        if v in table["all"]:
            m = table["all"][v]
            lines.append(f"{v:6s} {m['n']:6d} {m['rmse']:8.3f} {m['r2']:7.3f} {m['bias']:8.3f} "
                         f"{m['median_site_rmse']:14.3f}")
    return "\n".join(lines)
