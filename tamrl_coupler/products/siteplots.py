"""Site benchmarking pictures, beside the score tables of a point-set run (``sites_scores.md``) and of ``evaluate``:

* ``<prefix>_scatter.png``: observed against simulated, one panel per flux (GPP, Reco, NEE), point density where
  there are many points, the 1:1 line, pooled RMSE, bias, R2 and n;
* ``<prefix>_igbp_error.png``: each site's RMSE per flux, by IGBP class (boxes; the number of sites under each);
* ``<prefix>_seasonal_cycle.png``: each site's mean seasonal cycle of GPP and NEE, observed and simulated (small
  multiples, sites ordered by IGBP class then name).

All fluxes in gC m-2 d-1; NEE in the convention the caller states (printed on the pictures).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tamrl_coupler import vocabulary
from tamrl_coupler.physics.carbon import SignConvention
from tamrl_coupler.products.figures import pyplot, save_png
from tamrl_coupler.training.metrics import pooled_metrics

FLUXES = tuple(vocabulary.TARGETS)
UNIT = "gC m$^{-2}$ d$^{-1}$"
COLOURS = {"gpp": "#1b7837", "reco": "#b35806", "nee": "#5e3c99"}
NAMES = {"gpp": "GPP", "reco": "Reco", "nee": "NEE"}
DENSITY_ABOVE = 3000  # points: a scatter of more is drawn as a density (hexbin)


def site_plots(out_dir: Path, prefix: str, sites: np.ndarray, igbp: np.ndarray, times: np.ndarray,
               obs: dict[str, np.ndarray], sim: dict[str, np.ndarray], convention: SignConvention | str,
               title: str) -> list[Path]:
    """The three pictures for (site, time) arrays ``obs`` and ``sim`` (gC m-2 d-1) at ``times`` (datetime64)."""
    convention = SignConvention.parse(convention)
    out_dir = Path(out_dir)
    fluxes = [f for f in FLUXES if f in obs and f in sim]
    return [scatter(out_dir / f"{prefix}_scatter.png", obs, sim, fluxes, convention, title),
            igbp_error(out_dir / f"{prefix}_igbp_error.png", igbp, obs, sim, fluxes, title),
            seasonal_cycles(out_dir / f"{prefix}_seasonal_cycle.png", sites, igbp, times, obs, sim, convention,
                            title)]


def _label(flux: str, convention: SignConvention) -> str:
    return f"NEE ({convention.formula})" if flux == "nee" else NAMES[flux]


def scatter(png: Path, obs: dict, sim: dict, fluxes: list[str], convention: SignConvention, title: str) -> Path:
    plt = pyplot()
    fig, axes = plt.subplots(1, len(fluxes), figsize=(4.0 * len(fluxes), 3.6), dpi=100, squeeze=False,
                             layout="constrained")
    for ax, f in zip(axes[0], fluxes, strict=True):
        o, s = obs[f].ravel(), sim[f].ravel()
        ok = np.isfinite(o) & np.isfinite(s)
        o, s = o[ok], s[ok]
        m = pooled_metrics(s, o)
        if o.size:
            lo, hi = np.percentile(np.concatenate([o, s]), [0.2, 99.8])
            pad = 0.05 * (hi - lo or 1.0)
            lo, hi = lo - pad, hi + pad
        else:
            lo, hi = 0.0, 1.0
        if o.size > DENSITY_ABOVE:
            hb = ax.hexbin(o, s, gridsize=45, extent=(lo, hi, lo, hi), bins="log", mincnt=1, cmap="viridis")
            fig.colorbar(hb, ax=ax, shrink=0.7, pad=0.02).set_label("points per cell", fontsize=7)
        else:
            ax.scatter(o, s, s=5, alpha=0.35, color=COLOURS[f], edgecolors="none")
        ax.plot([lo, hi], [lo, hi], color="k", lw=0.8, ls="--")
        ax.set_xlim(lo, hi)
        ax.set_ylim(lo, hi)
        ax.set_aspect("equal")
        ax.set_title(_label(f, convention), fontsize=10)
        ax.set_xlabel(f"observed [{UNIT}]", fontsize=8)
        ax.set_ylabel(f"simulated [{UNIT}]", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.text(0.03, 0.97, f"RMSE {m['rmse']:.2f}\nbias {m['bias']:+.2f}\nR$^2$ {m['r2']:.2f}\nn {m['n']}",
                transform=ax.transAxes, va="top", fontsize=7.5,
                bbox=dict(facecolor="white", alpha=0.8, edgecolor="none"))
    fig.suptitle(f"{title}: observed against simulated", fontsize=10)
    return save_png(fig, png)


def _site_rmse(o: np.ndarray, s: np.ndarray) -> np.ndarray:
    ok = np.isfinite(o) & np.isfinite(s)
    n = ok.sum(axis=1)
    sq = np.where(ok, (s - o) ** 2, 0.0).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, np.sqrt(sq / np.maximum(n, 1)), np.nan)


def igbp_error(png: Path, igbp: np.ndarray, obs: dict, sim: dict, fluxes: list[str], title: str) -> Path:
    classes = [c for c in vocabulary.IGBP_CLASSES if (igbp == c).any()] + sorted(
        {str(c) for c in igbp if str(c) not in vocabulary.IGBP_CLASSES})
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(max(6.0, 0.75 * len(classes) + 2.0), 4.0), dpi=100)
    width = 0.8 / len(fluxes)
    for k, f in enumerate(fluxes):
        rmse = _site_rmse(obs[f], sim[f])
        data = [rmse[(igbp == c) & np.isfinite(rmse)] for c in classes]
        pos = np.arange(len(classes)) + (k - (len(fluxes) - 1) / 2) * width
        keep = [i for i, d in enumerate(data) if d.size]
        if not keep:
            continue
        box = ax.boxplot([data[i] for i in keep], positions=pos[keep], widths=width * 0.85, patch_artist=True,
                         showfliers=True, flierprops=dict(markersize=2), medianprops=dict(color="k"))
        for patch in box["boxes"]:
            patch.set_facecolor(COLOURS[f])
            patch.set_alpha(0.75)
        ax.plot([], [], color=COLOURS[f], lw=6, alpha=0.75, label=NAMES[f])
    counts = [int((igbp == c).sum()) for c in classes]
    ax.set_xticks(np.arange(len(classes)), [f"{c or '?'}\n{n} site{'s' * (n != 1)}" for c, n in zip(
        classes, counts, strict=True)], fontsize=7)
    ax.set_ylabel(f"per-site RMSE [{UNIT}]", fontsize=8)
    ax.tick_params(axis="y", labelsize=7)
    ax.legend(fontsize=7, ncols=len(fluxes), loc="upper left")
    ax.set_title(f"{title}: error by IGBP class", fontsize=10)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return save_png(fig, png)


def _monthly_climatology(values: np.ndarray, months: np.ndarray) -> np.ndarray:
    """(site, 12) mean per calendar month over the finite values (NaN where a month has none)."""
    out = np.full((values.shape[0], 12), np.nan)
    for m in range(12):
        sel = values[:, months == m]
        with np.errstate(invalid="ignore"):
            n = np.isfinite(sel).sum(axis=1)
            out[:, m] = np.where(n > 0, np.nansum(sel, axis=1) / np.maximum(n, 1), np.nan)
    return out


def seasonal_cycles(png: Path, sites: np.ndarray, igbp: np.ndarray, times: np.ndarray, obs: dict, sim: dict,
                    convention: SignConvention, title: str, ncols: int = 10) -> Path:
    months = (np.asarray(times).astype("datetime64[M]").astype(np.int64) % 12).astype(int)
    rank = {c: i for i, c in enumerate(vocabulary.IGBP_CLASSES)}
    order = sorted(range(len(sites)), key=lambda i: (rank.get(str(igbp[i]), 99), str(sites[i])))
    shown = [f for f in ("gpp", "nee") if f in obs and f in sim]
    clim = {(f, kind): _monthly_climatology(src[f], months) for f in shown for kind, src in (("obs", obs),
                                                                                              ("sim", sim))}
    n = len(order)
    ncols = min(ncols, max(n, 1))
    nrows = int(np.ceil(n / ncols))
    plt = pyplot()
    fig, axes = plt.subplots(nrows, ncols, figsize=(1.25 * ncols, 1.0 * nrows + 0.9), dpi=80, squeeze=False,
                             sharex=True)
    x = np.arange(1, 13)
    for ax in axes.ravel()[n:]:
        ax.set_visible(False)
    for ax, i in zip(axes.ravel(), order, strict=False):
        for f in shown:
            ax.plot(x, clim[(f, "obs")][i], color=COLOURS[f], lw=0, marker="o", ms=1.8)
            ax.plot(x, clim[(f, "sim")][i], color=COLOURS[f], lw=1.0)
        ax.axhline(0.0, color="#999999", lw=0.4)
        ax.set_title(f"{sites[i]} {igbp[i]}", fontsize=5.5, pad=1.5)
        ax.tick_params(labelsize=4.5, length=1.5, pad=1)
        ax.set_xticks([1, 4, 7, 10])
    handles = [plt.Line2D([], [], color=COLOURS[f], lw=1.0, marker="o", ms=2.5, label=NAMES[f]) for f in shown]
    height = 1.0 * nrows + 0.9
    fig.legend(handles=handles, loc="upper right", bbox_to_anchor=(0.99, 1.0 - 0.1 / height), fontsize=6.5,
               ncols=len(shown), frameon=False)
    nee = f"; NEE = {convention.formula.split('= ')[1]}" if "nee" in shown else ""
    fig.suptitle(f"{title}: mean seasonal cycle per site [{UNIT}], month 1-12, dots observed, lines simulated{nee}",
                 fontsize=8, x=0.01, y=1.0 - 0.12 / height, ha="left")
    # fixed margins: tight_layout over a hundred small axes costs seconds and changes nothing here
    fig.subplots_adjust(left=0.035, right=0.995, bottom=0.35 / height, top=1.0 - 0.6 / height, wspace=0.38,
                        hspace=0.55)
    return save_png(fig, png)
