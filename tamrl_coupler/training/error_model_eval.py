"""How good an error model's spreads are at sites it never saw: nested over the CV folds (each fold's spreads from
a model fitted on the other folds' held-out errors), scored pooled, per site, per IGBP class, per climate zone, on
extreme days, and by the CRPS (a proper score: it rewards sharpness and calibration together).

Two error models: "global" (``model/calibration.py``: log sigma from the predicted flux level and the class) and
"site" (``model/site_error.py``: a day-level part plus a site-level part that grows with the novelty of the cell's
task embedding)."""

from __future__ import annotations

import numpy as np

from tamrl_coupler.model.calibration import FLUXES, SpreadCalibration
from tamrl_coupler.model.site_error import SiteErrorModel
from tamrl_coupler.training.site_error_fit import crps_gaussian, fit_coefficients, fit_inflation

Z90 = 1.645
KINDS = ("global", "site")


def fit_site_model(pred: dict, obs: dict, igbp_b: np.ndarray, site_b: np.ndarray, fold_b: np.ndarray,
                   member_sd: dict, novelty: np.ndarray, member_sd_term: bool = True,
                   target_q10: float | None = 0.75, rows: np.ndarray | None = None) -> SiteErrorModel:
    """The day + site model fitted on the finite values of ``pred`` (those of ``rows`` only, when given), and its
    inflation (:func:`~tamrl_coupler.model.site_error.fit_inflation`) chosen on those values' own held-out sigmas
    (each of their folds from a model fitted on their other folds: in-sample sigmas would flatter the worst sites);
    ``target_q10`` None leaves it at 1."""
    keep = np.ones(pred["gpp"].shape, bool) if rows is None else rows
    masked = {v: np.where(keep, pred[v], np.nan) for v in FLUXES}
    day, site = fit_coefficients(masked, member_sd, novelty, obs, igbp_b, site_b,
                                                member_sd_term=member_sd_term)
    model = SiteErrorModel(day, site)
    if target_q10 is not None:
        inner = {v: np.full(keep.shape, np.nan) for v in FLUXES}
        for k in np.unique(fold_b[keep]):
            part = keep & (fold_b != k)
            masked = {v: np.where(part, pred[v], np.nan) for v in FLUXES}
            d, st = fit_coefficients(masked, member_sd, novelty, obs, igbp_b, site_b,
                                                    member_sd_term=member_sd_term)
            s = SiteErrorModel(d, st).sigma(pred["gpp"], pred["reco"], member_sd, novelty, igbp_b)
            for v in FLUXES:
                here = keep & (fold_b == k)
                inner[v][here] = s[v][here]
        model.inflation = {v: fit_inflation(np.where(keep, pred[v] - obs[v], np.nan), inner[v], target_q10)
                           for v in FLUXES}
    return model


def nested_sigmas(kind: str, pred: dict, obs: dict, igbp: np.ndarray, fold: np.ndarray,
                  member_sd: dict | None = None, novelty: np.ndarray | None = None,
                  member_sd_term: bool = True, target_q10: float | None = 0.75) -> dict[str, np.ndarray]:
    """Spreads (site, time) per flux, each fold's from the error model fitted on the other folds (a site model's
    inflation too)."""
    shape = pred["gpp"].shape
    igbp_b = np.broadcast_to(np.asarray(igbp, float).reshape(-1, 1), shape)
    fold_b = np.broadcast_to(np.asarray(fold).reshape(-1, 1), shape)
    site_b = np.broadcast_to(np.arange(shape[0])[:, None], shape)
    sig = {v: np.full(shape, np.nan) for v in FLUXES}
    for k in np.unique(fold):
        train = fold_b != k
        masked = {v: np.where(train, pred[v], np.nan) for v in FLUXES}
        if kind == "global":
            s = SpreadCalibration.fit(masked, obs, igbp_b).sigma(pred["gpp"], pred["reco"], igbp_b)
        else:
            s = fit_site_model(pred, obs, igbp_b, site_b, fold_b, member_sd, novelty, member_sd_term, target_q10,
                               rows=train).sigma(pred["gpp"], pred["reco"], member_sd, novelty, igbp_b)
        for v in FLUXES:
            sig[v][fold_b == k] = s[v][fold_b == k]
    return sig


def _scores(err: np.ndarray, sig: np.ndarray, crps: np.ndarray, ok: np.ndarray) -> dict:
    if not ok.any():
        return {"n": 0}
    return {"n": int(ok.sum()), "coverage": float(np.mean(np.abs(err[ok]) <= Z90 * sig[ok])),
            "spread_over_rmse": float(np.sqrt(np.mean(sig[ok] ** 2)) / np.sqrt(np.mean(err[ok] ** 2))),
            "crps": float(np.mean(crps[ok]))}


def score_spreads(pred: dict, sig: dict, obs: dict, site_class: np.ndarray, zones: np.ndarray | None = None,
                  masks: dict[str, np.ndarray] | None = None, min_site_obs: int = 6) -> dict:
    """Per flux: pooled coverage of mean +- 1.645 sigma, spread/RMSE, mean CRPS; per-site coverage quantiles
    (q10 = the worst-covered tenth of sites), per IGBP class and zone (with site counts), per extreme subset."""
    out = {}
    for v in FLUXES:
        err = pred[v] - obs[v]
        ok = np.isfinite(err) & np.isfinite(sig[v])
        crps = np.where(ok, crps_gaussian(np.nan_to_num(pred[v]), np.where(ok, sig[v], 1.0), np.nan_to_num(obs[v])),
                        np.nan)
        inside = np.abs(err) <= Z90 * sig[v]
        per_site = np.array([inside[i][ok[i]].mean() for i in range(len(ok)) if ok[i].sum() >= min_site_obs])
        r = _scores(err, sig[v], crps, ok)
        r["site_coverage_q10_q25_q50"] = [float(q) for q in np.quantile(per_site, [0.1, 0.25, 0.5])]
        r["site_coverage_worst"] = float(per_site.min())
        for key, groups in (("by_igbp", site_class), ("by_zone", zones)):
            if groups is None:
                continue
            groups = np.asarray(groups).astype(str)
            r[key] = {}
            for g in sorted(set(groups.tolist())):
                m = ok & (groups == g)[:, None]
                r[key][g or "unknown"] = {**_scores(err, sig[v], crps, m),
                                          "n_sites": int(((groups == g) & ok.any(axis=1)).sum())}
        r["extremes"] = {name: _scores(err, sig[v], crps, ok & m) for name, m in (masks or {}).items()}
        out[v] = r
    return out
