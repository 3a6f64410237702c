"""Scores the way users look: per site, against a baseline, with intervals from resampling sites.

Why: a pooled RMSE over all (site, day) pairs is decided by the long records, and a land modeller looks at *her*
tower. For a model and a baseline predicted on the same held-out pairs this gives, per flux:

* the pooled RMSE ratio ``sqrt(sum_s SSE_s / sum_s SSE_base_s)`` (pairs where both predict and an observation is),
* the median over sites of each site's RMSE, and of each site's RMSE ratio to the baseline,
* the share of sites where the model's RMSE is the lower,
* the same ratios with the longest-record site of each CV fold left out,
* a 90 % interval of every ratio from a bootstrap over sites (sites drawn with replacement, ``n_boot`` times, a
  fixed seed: every comparison on the same sites sees the same draws, so rows are compared paired).

A lead counts only where the interval's upper end lies below 1.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

N_BOOT = 2000
LEVEL = 0.90
RATIOS = ("pooled_ratio", "median_site_ratio")


@dataclass
class PairedSites:
    """Per-site squared-error sums of a model and a baseline on their common pairs, for sites with enough pairs."""

    index: np.ndarray  # (S',) rows of the (site, time) arrays kept
    sse: np.ndarray  # (S',)
    sse_base: np.ndarray  # (S',)
    n: np.ndarray  # (S',) common pairs

    @property
    def rmse(self) -> np.ndarray:
        return np.sqrt(self.sse / self.n)

    @property
    def rmse_base(self) -> np.ndarray:
        return np.sqrt(self.sse_base / self.n)

    @property
    def ratio(self) -> np.ndarray:
        return np.sqrt(self.sse / self.sse_base)


def paired_sites(pred: np.ndarray, base: np.ndarray, obs: np.ndarray, min_obs: int = 6,
                 mask: np.ndarray | None = None) -> PairedSites:
    """(S, T) predictions of a model and a baseline and the observations -> per-site sums over the pairs where all
    three are finite (and ``mask`` is true); sites with fewer than ``min_obs`` such pairs, or a baseline without
    error there, are left out."""
    ok = np.isfinite(pred) & np.isfinite(base) & np.isfinite(obs)
    if mask is not None:
        ok &= mask
    n = ok.sum(axis=1)
    sse = np.where(ok, (pred - obs) ** 2, 0.0).sum(axis=1)
    sse_b = np.where(ok, (base - obs) ** 2, 0.0).sum(axis=1)
    keep = np.flatnonzero((n >= max(min_obs, 1)) & (sse_b > 0))
    return PairedSites(keep, sse[keep], sse_b[keep], n[keep])


def _ratio_stats(sse: np.ndarray, sse_b: np.ndarray) -> dict[str, np.ndarray]:
    """The ratios along the last axis (sites; a bootstrap puts its draws in front)."""
    return {"pooled_ratio": np.sqrt(sse.sum(axis=-1) / sse_b.sum(axis=-1)),
            "median_site_ratio": np.median(np.sqrt(sse / sse_b), axis=-1)}


def bootstrap_ratios(p: PairedSites, n_boot: int = N_BOOT, seed: int = 0, level: float = LEVEL
                     ) -> dict[str, list[float]]:
    """[lo, hi] of each of :data:`RATIOS` over ``n_boot`` resamples of the sites (percentile interval); NaN for
    fewer than 3 sites (no interval worth the name)."""
    s = len(p.sse)
    if s < 3:
        return {k: [float("nan"), float("nan")] for k in RATIOS}
    draw = np.random.default_rng(seed).integers(0, s, size=(n_boot, s))
    stats = _ratio_stats(p.sse[draw], p.sse_base[draw])
    q = [(1.0 - level) / 2.0, (1.0 + level) / 2.0]
    return {k: [float(v) for v in np.quantile(stats[k], q)] for k in RATIOS}


def longest_per_fold(n_obs: np.ndarray, fold: np.ndarray) -> np.ndarray:
    """Boolean (S,): the site with the most observations in each fold (the first one on ties)."""
    out = np.zeros(len(n_obs), dtype=bool)
    for k in np.unique(fold):
        idx = np.flatnonzero(fold == k)
        out[idx[np.argmax(n_obs[idx])]] = True
    return out


def _summary(p: PairedSites, n_boot: int, seed: int) -> dict:
    if len(p.sse) == 0:
        nan = float("nan")
        return {"n_sites": 0, **{k: nan for k in RATIOS}, **{f"{k}_ci": [nan, nan] for k in RATIOS}}
    point = _ratio_stats(p.sse, p.sse_base)
    ci = bootstrap_ratios(p, n_boot, seed)
    return {"n_sites": int(len(p.sse)), **{k: float(point[k]) for k in RATIOS},
            **{f"{k}_ci": ci[k] for k in RATIOS}}


def compare(pred: np.ndarray, base: np.ndarray, obs: np.ndarray, fold: np.ndarray | None = None,
            min_obs: int = 6, n_boot: int = N_BOOT, seed: int = 0, mask: np.ndarray | None = None) -> dict:
    """A model against a baseline on (S, T) arrays: the site-honest figures of the module docstring.

    ``fold`` (S,): each site's CV fold, for the figures without the longest-record site of each fold (absent
    without it). ``mask`` (S, T): only these pairs (e.g. extreme days)."""
    p = paired_sites(pred, base, obs, min_obs, mask)
    out = _summary(p, n_boot, seed)
    if len(p.sse):
        out.update(median_site_rmse=float(np.median(p.rmse)), median_site_rmse_base=float(np.median(p.rmse_base)),
                   share_better=float(np.mean(p.sse < p.sse_base)))
    if fold is not None and len(p.sse):
        drop = longest_per_fold(p.n, np.asarray(fold)[p.index])
        rest = PairedSites(p.index[~drop], p.sse[~drop], p.sse_base[~drop], p.n[~drop])
        out["without_longest"] = {**_summary(rest, n_boot, seed), "left_out": [int(i) for i in p.index[drop]]}
    return out


def compare_groups(pred: np.ndarray, base: np.ndarray, obs: np.ndarray, groups: np.ndarray, min_obs: int = 6,
                   n_boot: int = N_BOOT, seed: int = 0) -> dict[str, dict]:
    """:func:`compare` within each group of sites (IGBP class, climate zone), groups in sorted order."""
    groups = np.asarray(groups).astype(str)
    out = {}
    for g in sorted(set(groups.tolist())):
        idx = np.flatnonzero(groups == g)
        out[g or "unknown"] = compare(pred[idx], base[idx], obs[idx], None, min_obs, n_boot, seed)
    return out


def fmt_ratio(value: float, ci: list[float]) -> str:
    """'0.95 [0.90, 1.01]', in bold where the whole interval lies below 1 (a lead that counts)."""
    if not np.isfinite(value):
        return "-"
    if not np.all(np.isfinite(ci)):
        return f"{value:.3f}"
    text = f"{value:.3f} [{ci[0]:.3f}, {ci[1]:.3f}]"
    return f"**{text}**" if ci[1] < 1.0 else text
