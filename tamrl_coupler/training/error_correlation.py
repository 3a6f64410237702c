"""How the model's daily flux errors are correlated in time and between places, fitted on held-out tower residuals.

An inversion that takes our fluxes as its prior needs more than a standard deviation per cell and day: it needs how
the errors of two days, and of two places, go together (its prior covariance). Both are measured here the way
Chevallier et al. (2012, doi:10.1029/2010GB003974) measured them for process models: on the differences between the
model and eddy-covariance towers, only ours are *held-out* differences (grouped cross-validation), so the model never
saw the tower it is compared with.

* **Residuals**: observed minus predicted per site and day. Each site's mean error is taken out before correlating
  (it is a constant offset: perfectly correlated in time, reported separately as ``site_bias_sd``); the seasonal
  error is kept by default, because it is part of what an inversion must correct and it is what carries the
  correlation over weeks (``deseasonalise=True`` takes each site's mean error per calendar month out as well).
* **Time**: the pooled autocorrelation by lag (sum of lagged products over all sites' day pairs, normalised by their
  sums of squares), fitted by ``c exp(-lag / tau)`` for lags >= 1 day: ``tau`` is the e-folding time; ``c < 1`` is
  the share of the error variance that is correlated from day to day (the rest is day-to-day noise, in good part
  the towers' own random error).
* **Space**: the correlation of the residual anomalies of every pair of towers with enough common days, fitted by
  ``c exp(-d / L)`` against their great-circle distance ``d``: ``L`` is the correlation length. Few tower pairs are
  close, so the fit's uncertainty matters: it comes from resampling sites (a site bootstrap), and the pairs per
  distance bin are reported.

The two fits together are a separable model, corr(e(x1, t1), e(x2, t2)) = c_t exp(-|t1 - t2| / tau) *
c_s exp(-d / L) off the diagonal, the form CarbonTracker-Europe (CTDAS) and CAMS write their prior covariances in.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np

from tamrl_coupler.errors import InputError

EARTH_RADIUS_KM = 6371.0
DISTANCE_BINS_KM = (0.0, 5.0, 50.0, 100.0, 200.0, 300.0, 500.0, 1000.0, 2000.0, 5000.0, 20040.0)


def great_circle_km(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """(n, n) great-circle distances [km] between points given in degrees (haversine)."""
    la, lo = np.deg2rad(np.asarray(lat, float)), np.deg2rad(np.asarray(lon, float))
    a = (np.sin((la[:, None] - la[None]) / 2) ** 2
         + np.cos(la[:, None]) * np.cos(la[None]) * np.sin((lo[:, None] - lo[None]) / 2) ** 2)
    return 2 * EARTH_RADIUS_KM * np.arcsin(np.sqrt(np.clip(a, 0, 1)))


def anomalies(resid: np.ndarray, month: np.ndarray | None = None) -> np.ndarray:
    """Each site's residuals minus its mean (and, with ``month`` (T,) 0-11, minus its mean per calendar month)."""
    r = np.array(resid, dtype=np.float64)
    if month is None:
        return r - np.nanmean(r, axis=1, keepdims=True)
    out = np.full_like(r, np.nan)
    for m in range(12):
        sel = month == m
        if sel.any():
            block = r[:, sel]
            with warnings.catch_warnings():  # a site without data in a month: NaN, as it should be
                warnings.simplefilter("ignore", RuntimeWarning)
                out[:, sel] = block - np.nanmean(block, axis=1, keepdims=True)
    return out


def lag_correlation(anom: np.ndarray, max_lag: int, sites: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Pooled autocorrelation by lag 0..max_lag over all sites' day pairs with both values, and the number of pairs.

    rho(k) = sum a(t) a(t+k) / sqrt(sum a(t)^2 sum a(t+k)^2) over the pairs (each sum over every site's pairs);
    ``sites`` (a list of row indices, repeats allowed: a bootstrap sample) restricts and weights the rows."""
    a = anom if sites is None else anom[sites]
    ok = np.isfinite(a)
    x = np.where(ok, a, 0.0)
    rho, n = np.full(max_lag + 1, np.nan), np.zeros(max_lag + 1, dtype=np.int64)
    for k in range(max_lag + 1):
        both = ok[:, : a.shape[1] - k] & ok[:, k:]
        n[k] = int(both.sum())
        if n[k] == 0:
            continue
        u, v = np.where(both, x[:, : a.shape[1] - k], 0.0), np.where(both, x[:, k:], 0.0)
        den = math.sqrt(float((u * u).sum()) * float((v * v).sum()))
        rho[k] = float((u * v).sum()) / den if den > 0 else np.nan
    return rho, n


def pair_correlations(anom: np.ndarray, lat: np.ndarray, lon: np.ndarray, min_overlap: int = 60
                      ) -> dict[str, np.ndarray]:
    """Every pair of sites (i < j) with at least ``min_overlap`` common days: their distance [km], the Pearson
    correlation of their anomalies over those days, and the number of days."""
    ok = np.isfinite(anom)
    x = np.where(ok, anom, 0.0)
    overlap = ok.astype(np.float64) @ ok.T.astype(np.float64)
    d = great_circle_km(lat, lon)
    i, j = np.nonzero(np.triu(overlap >= min_overlap, k=1))
    r = np.empty(i.size)
    for p, (a, b) in enumerate(zip(i, j, strict=True)):
        both = ok[a] & ok[b]
        u, v = x[a, both], x[b, both]
        u, v = u - u.mean(), v - v.mean()
        den = math.sqrt(float(u @ u) * float(v @ v))
        r[p] = float(u @ v) / den if den > 0 else np.nan
    keep = np.isfinite(r)
    return {"i": i[keep], "j": j[keep], "km": d[i, j][keep], "r": r[keep], "days": overlap[i, j][keep]}


def fit_exponential(x: np.ndarray, r: np.ndarray, w: np.ndarray, scale_bounds: tuple[float, float],
                    offset: bool = False, fraction: float | None = None) -> tuple[float, float, float]:
    """Weighted least-squares fit of ``r ~ b + c exp(-x / s)`` with b, c >= 0: (s, c, b); ``offset=False`` fixes
    b = 0, ``fraction`` fixes c (1: a pure exponential, correlation 1 at zero distance or lag).

    For a given ``s`` the best (b, c) is a small bounded linear problem; ``s`` is found on a log grid, then refined
    (bounded scalar search around the best grid point)."""
    from scipy.optimize import lsq_linear, minimize_scalar

    ok = np.isfinite(r) & np.isfinite(x) & (w > 0)
    x, r, w = x[ok], r[ok], w[ok]
    if x.size < (3 if offset else 2):
        raise InputError(f"error correlation fit: {x.size} usable point(s) are too few")
    sw = np.sqrt(w / w.sum())

    def coefs(s: float) -> tuple[float, float]:
        e = np.exp(-x / s)
        if fraction is not None:
            return float(fraction), 0.0
        if not offset:
            return float(max((w * r * e).sum() / (w * e * e).sum(), 0.0)), 0.0
        a = np.stack([e, np.ones_like(e)], axis=1) * sw[:, None]
        c, b = lsq_linear(a, r * sw, bounds=([0.0, 0.0], [np.inf, 1.0])).x
        return float(c), float(b)

    def cost(logs: float) -> float:
        s = math.exp(logs)
        c, b = coefs(s)
        return float((w * (r - b - c * np.exp(-x / s)) ** 2).sum())

    lo, hi = (math.log(v) for v in scale_bounds)
    grid = np.linspace(lo, hi, 120)
    k = int(np.argmin([cost(g) for g in grid]))
    res = minimize_scalar(cost, bounds=(grid[max(k - 1, 0)], grid[min(k + 1, grid.size - 1)]), method="bounded",
                          options={"xatol": 1e-5})
    s = math.exp(float(res.x))
    return (s, *coefs(s))


@dataclass
class ExponentialFit:
    """``offset + fraction exp(-x / scale)`` with 90 % site-bootstrap intervals, and the data behind it."""

    scale: float
    fraction: float
    offset: float
    scale_ci90: tuple[float, float]
    fraction_ci90: tuple[float, float]
    offset_ci90: tuple[float, float]
    n_bootstrap: int
    table: dict[str, list] = field(default_factory=dict)  # the binned data (lags or distance bins)

    @classmethod
    def from_fits(cls, best: tuple[float, float, float], boot: list[tuple[float, float, float]],
                  table: dict[str, list]) -> ExponentialFit:
        return cls(*best, *(_interval([b[i] for b in boot]) for i in range(3)), len(boot), table)


@dataclass
class ErrorCorrelation:
    """The fitted error-correlation model of one flux (see the module docstring); JSON round trip."""

    flux: str
    period: str
    deseasonalised: bool
    error_sd: float  # pooled SD of the daily residuals, gC m-2 d-1 (site means included)
    rms_error: float  # pooled root mean square of the daily residuals (the site means' offsets included)
    site_bias_sd: float  # SD over sites of the site-mean error
    n_sites: int
    n_days: int
    temporal: ExponentialFit  # scale: e-folding time [days]; offset: the persistent (site-bias) share
    spatial: ExponentialFit  # scale: correlation length [km] of the correlated share ``fraction``
    spatial_pure: ExponentialFit | None = None  # the same pairs as exp(-d / L): correlation 1 at zero distance
    source: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> ErrorCorrelation:
        try:
            kw = dict(d)
            for k in ("temporal", "spatial", "spatial_pure"):
                if kw.get(k) is None:
                    continue
                f = dict(kw[k])
                for c in ("scale_ci90", "fraction_ci90", "offset_ci90"):
                    f[c] = tuple(f[c])
                kw[k] = ExponentialFit(**f)
            return cls(**kw)
        except (KeyError, TypeError) as exc:
            raise InputError(f"error correlation: not a fitted model ({exc})") from None


def _binned_pairs(km: np.ndarray, r: np.ndarray, days: np.ndarray, edges: tuple[float, ...]) -> dict[str, list]:
    rows: dict[str, list] = {"km_from": [], "km_to": [], "pairs": [], "mean_km": [], "r_mean": [], "r_weighted": []}
    for a, b in zip(edges[:-1], edges[1:], strict=True):
        sel = (km >= a) & (km < b)
        rows["km_from"].append(a)
        rows["km_to"].append(b)
        rows["pairs"].append(int(sel.sum()))
        rows["mean_km"].append(float(km[sel].mean()) if sel.any() else None)
        rows["r_mean"].append(float(r[sel].mean()) if sel.any() else None)
        rows["r_weighted"].append(float((r[sel] * days[sel]).sum() / days[sel].sum()) if sel.any() else None)
    return rows


def _interval(values: list[float]) -> tuple[float, float]:
    v = np.asarray([x for x in values if np.isfinite(x)])
    return (float(np.quantile(v, 0.05)), float(np.quantile(v, 0.95))) if v.size else (math.nan, math.nan)


def fit_error_correlation(obs: np.ndarray, pred: np.ndarray, time: np.ndarray, lat: np.ndarray, lon: np.ndarray,
                          flux: str = "nee", deseasonalise: bool = False, max_lag: int = 90, fit_lag: int = 60,
                          min_overlap: int = 60, max_km: float = 5000.0, n_bootstrap: int = 200, seed: int = 0,
                          source: dict | None = None,
                          progress: Callable[[int], None] | None = None) -> ErrorCorrelation:
    """Fit the temporal and spatial error correlation of daily ``pred`` against ``obs`` (both (site, time),
    NaN where missing; ``time`` datetime64 days; ``lat``/``lon`` per site in degrees).

    Time: the pooled lag correlation of the residuals themselves (each site's mean error kept: no mean is estimated,
    so short records do not bias the correlation low), fitted by ``b + c exp(-lag / tau)`` over lags 1..``fit_lag``
    days weighted by their numbers of pairs; ``b`` is the persistent share (site biases), ``c`` the share that
    decays with e-folding time ``tau``, ``1 - b - c`` day-to-day noise. With ``deseasonalise`` each site's mean error
    per calendar month is taken out first. Space: the correlation of the anomalies of every pair of towers up to
    ``max_km`` apart with ``min_overlap`` common days, fitted by ``c exp(-d / L)`` weighted by the common days.
    Intervals: ``n_bootstrap`` resamples of the sites (for space, the pairs between the resampled sites)."""
    obs, pred = np.asarray(obs, np.float64), np.asarray(pred, np.float64)
    if obs.shape != pred.shape or obs.ndim != 2 or obs.shape[1] != len(time) or obs.shape[0] != len(lat):
        raise InputError(f"error correlation fit: observations {obs.shape}, predictions {pred.shape}, {len(time)} "
                         f"times, {len(lat)} sites do not match")
    resid = obs - pred
    valid_sites = np.flatnonzero(np.isfinite(resid).sum(axis=1) >= 2)
    resid, lat, lon = resid[valid_sites], np.asarray(lat)[valid_sites], np.asarray(lon)[valid_sites]
    if resid.shape[0] < 3:
        raise InputError(f"error correlation fit: {resid.shape[0]} site(s) with residuals; at least 3 are needed")
    month = np.asarray(time).astype("datetime64[M]").astype(np.int64) % 12
    series = anomalies(resid, month) if deseasonalise else resid
    lags = np.arange(max_lag + 1, dtype=np.float64)

    def temporal(sites: np.ndarray | None) -> tuple[tuple[float, float, float], np.ndarray, np.ndarray]:
        rho, n = lag_correlation(series, max_lag, sites)
        fit = fit_exponential(lags[1:fit_lag + 1], rho[1:fit_lag + 1], n[1:fit_lag + 1].astype(float),
                              (0.5, 2000.0), offset=True)
        return fit, rho, n

    pairs = pair_correlations(anomalies(resid, month if deseasonalise else None), lat, lon, min_overlap)
    near = pairs["km"] <= max_km

    def spatial(rows: np.ndarray, pure: bool = False) -> tuple[float, float, float]:
        return fit_exponential(pairs["km"][rows], pairs["r"][rows], pairs["days"][rows],
                               (0.01, 20000.0) if pure else (1.0, 20000.0), fraction=1.0 if pure else None)

    best_t, rho, n = temporal(None)
    best_s = spatial(np.flatnonzero(near))
    best_p = spatial(np.flatnonzero(near), pure=True)
    rng = np.random.default_rng(seed)
    boot_t: list[tuple[float, float, float]] = []
    boot_s: list[tuple[float, float, float]] = []
    boot_p: list[tuple[float, float, float]] = []
    m = resid.shape[0]
    for b in range(n_bootstrap):
        draw = rng.integers(0, m, m)
        try:
            boot_t.append(temporal(draw)[0])
        except InputError:
            pass
        # a pair counts as often as both its sites were drawn (a site paired with its own copy is no pair)
        counts = np.bincount(draw, minlength=m)
        w = counts[pairs["i"]] * counts[pairs["j"]]
        sel = near & (w > 0)
        try:
            rows = np.repeat(np.flatnonzero(sel), w[sel])
            boot_s.append(spatial(rows))
            boot_p.append(spatial(rows, pure=True))
        except InputError:
            pass
        if progress is not None:
            progress(b)
    lag_table = {"lag_days": list(range(max_lag + 1)), "r": [None if not np.isfinite(v) else float(v) for v in rho],
                 "pairs": [int(v) for v in n], "fit_lags": [1, fit_lag]}
    pair_table = _binned_pairs(pairs["km"], pairs["r"], pairs["days"], DISTANCE_BINS_KM)
    pair_table.update(pairs_used_in_fit=int(near.sum()), max_km_fitted=max_km, min_overlap_days=min_overlap)
    return ErrorCorrelation(
        flux=flux, period="daily", deseasonalised=deseasonalise,
        error_sd=float(np.nanstd(resid)), rms_error=float(np.sqrt(np.nanmean(resid**2))),
        site_bias_sd=float(np.nanstd(np.nanmean(resid, axis=1))), n_sites=int(resid.shape[0]),
        n_days=int(np.isfinite(resid).sum()),
        temporal=ExponentialFit.from_fits(best_t, boot_t, lag_table),
        spatial=ExponentialFit.from_fits(best_s, boot_s, pair_table),
        spatial_pure=ExponentialFit.from_fits(best_p, boot_p, {}),
        source=dict(source or {}))


def correlation(model: ErrorCorrelation, lag_days: np.ndarray | float, km: np.ndarray | float) -> np.ndarray:
    """The model's error correlation between two values ``lag_days`` apart in time and ``km`` apart in space (1 for
    the same value; off it, the separable product of the temporal and the spatial fit)."""
    lag, d = np.asarray(lag_days, float), np.asarray(km, float)
    t, s = model.temporal, model.spatial
    ct = np.where(lag == 0, 1.0, t.offset + t.fraction * np.exp(-np.abs(lag) / t.scale))
    cs = np.where(d == 0, 1.0, s.offset + s.fraction * np.exp(-d / s.scale))
    return ct * cs
