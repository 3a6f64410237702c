"""Fitting the site error model (``model/site_error.py``) on cross-validation held-out errors: the random-site-offset
likelihood, the inflation that brings the worst-covered tenth of sites to a target, and the CRPS it is judged by.
"""

from __future__ import annotations

import numpy as np

from tamrl_coupler.errors import CheckpointError
from tamrl_coupler.model.site_error import FLUXES, N_DAY, N_SITE, SD_FLOOR, day_design, site_design

# pseudo-observations pulling each class offset to 0 (chosen nested on the monthly CV: 100 left EBF, SAV under-covered)
RIDGE = 2.0


def random_offset_nll(theta, xd, xs, err, site, n_sites: int, ridge: float, torch_mod):
    """Mean negative log-likelihood (per day) of ``err`` under day errors N(0, exp(2 xd@a)) plus a site offset
    shared by a site's days, exp(xs@b) u with one u ~ N(0, 1) per site, with a ridge on the class offsets.
    (Covariance D + t t^T per site: Sherman-Morrison gives its inverse and determinant.)"""
    t = torch_mod
    nd = xd.shape[1]
    a, b = theta[:nd], theta[nd:]
    d = t.exp(2.0 * (xd @ a))  # day variances
    scale = t.exp(xs @ b)  # each day's site-offset scale
    inv = 1.0 / d
    seg = t.zeros(n_sites, dtype=theta.dtype)
    big_a = seg.index_add(0, site, scale * scale * inv)
    big_b = seg.index_add(0, site, scale * err * inv)
    big_c = seg.index_add(0, site, err * err * inv)
    log_d = seg.index_add(0, site, t.log(d))
    q = 1.0 + big_a
    nll = 0.5 * (log_d + t.log(q) + big_c - big_b**2 / q).sum() / len(err)
    pen = ridge / len(err) * ((a[N_DAY:] ** 2).sum() + (b[N_SITE:] ** 2).sum())
    return nll + pen


def _fit_random_offset(xd: np.ndarray, xs: np.ndarray, err: np.ndarray, site: np.ndarray, n_sites: int,
                       ridge: float) -> np.ndarray:
    """Coefficients (day, then site) minimising :func:`random_offset_nll`: L-BFGS with torch's gradient."""
    import torch
    from scipy.optimize import minimize

    xd_t, xs_t, e_t, s_t = (torch.as_tensor(a) for a in (xd, xs, err, site))

    def f(theta_np):
        theta = torch.as_tensor(theta_np, dtype=torch.float64).requires_grad_(True)
        val = random_offset_nll(theta, xd_t, xs_t, e_t, s_t, n_sites, ridge, torch)
        val.backward()
        return float(val.detach()), theta.grad.numpy().copy()

    theta0 = np.zeros(xd.shape[1] + xs.shape[1])
    var = max(float(np.mean(err**2)), 1e-12)
    theta0[0], theta0[xd.shape[1]] = 0.5 * np.log(0.6 * var), 0.5 * np.log(0.4 * var)
    return minimize(f, theta0, jac=True, method="L-BFGS-B").x


def fit_coefficients(pred: dict[str, np.ndarray], member_sd: dict[str, np.ndarray], novelty: np.ndarray,
                     obs: dict[str, np.ndarray], igbp: np.ndarray, site: np.ndarray, ridge: float = RIDGE,
                     member_sd_term: bool = True) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Day and site coefficients from held-out predictions (arrays of one shape, NaN = none): ``site`` the
    site index of each value, ``novelty`` per value.
    ``member_sd_term=False`` keeps the member-spread coefficient at 0 (a CV ensemble smaller than the
    checkpoint's has noisier spreads than the checkpoint will)."""
    site = np.broadcast_to(np.asarray(site), np.shape(pred["gpp"]))
    if not member_sd_term:  # log(1 - floor + floor) = 0: a column of zeros, its coefficient stays 0
        member_sd = {v: np.where(np.isfinite(pred["gpp"]), 1.0 - SD_FLOOR, np.nan) for v in FLUXES}
    igbp = np.broadcast_to(np.asarray(igbp, float), site.shape)
    day, sitec = {}, {}
    for v in FLUXES:
        err = np.asarray(pred[v], float) - np.asarray(obs[v], float)
        xd_all = day_design(pred["gpp"], pred["reco"], member_sd[v], igbp)
        ok = np.isfinite(err) & np.isfinite(xd_all).all(axis=-1) & np.isfinite(novelty)
        if ok.sum() < 10:
            raise CheckpointError(f"site error model of {v}: only {int(ok.sum())} held-out values")
        ids, s_idx = np.unique(site[ok], return_inverse=True)
        xs = site_design(novelty[ok], pred["gpp"][ok], member_sd[v][ok], igbp[ok])
        theta = _fit_random_offset(xd_all[ok], xs, err[ok], s_idx, len(ids), ridge)
        day[v], sitec[v] = theta[:xd_all.shape[-1]], theta[xd_all.shape[-1]:]
    return day, sitec


def site_coverage(err: np.ndarray, sigma: np.ndarray, min_obs: int = 6, z: float = 1.645) -> np.ndarray:
    """Per site (rows of (site, time) arrays): the share of its values inside +- z sigma (sites with >= min_obs)."""
    ok = np.isfinite(err) & np.isfinite(sigma)
    inside = np.abs(err) <= z * sigma
    return np.array([inside[i][ok[i]].mean() for i in range(err.shape[0]) if ok[i].sum() >= min_obs])


def fit_inflation(err: np.ndarray, sigma: np.ndarray, target_q10: float = 0.75, max_coverage: float = 0.95,
                  grid: np.ndarray | None = None) -> float:
    """The smallest factor k on sigma (grid 1.00, 1.01, ...) with which the tenth of sites worst covered by
    +- 1.645 k sigma still has ``target_q10`` of its values inside, unless that takes the pooled coverage above
    ``max_coverage`` (then the largest k below it). ``err``, ``sigma``: (site, time) held-out errors and sigmas."""
    grid = np.round(np.arange(1.0, 2.0001, 0.01), 2) if grid is None else grid
    ok = np.isfinite(err) & np.isfinite(sigma)
    best = 1.0
    for k in grid:
        if np.mean(np.abs(err[ok]) <= 1.645 * k * sigma[ok]) > max_coverage:
            break
        best = float(k)
        if np.quantile(site_coverage(err, k * sigma), 0.1) >= target_q10:
            break
    return best


def crps_gaussian(mu: np.ndarray, sigma: np.ndarray, obs: np.ndarray) -> np.ndarray:
    """Continuous ranked probability score of N(mu, sigma^2) forecasts of ``obs`` (a proper score; lower is
    better; gC m-2 d-1)."""
    from scipy.stats import norm

    z = (obs - mu) / sigma
    return sigma * (z * (2.0 * norm.cdf(z) - 1.0) + 2.0 * norm.pdf(z) - 1.0 / np.sqrt(np.pi))
