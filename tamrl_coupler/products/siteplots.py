"""Site benchmarking pictures, beside the score tables of a point-set run (``sites_scores.md``) and of ``evaluate``:

* ``<prefix>_scatter.png``: observed against simulated, one panel per flux (GPP, Reco, NEE), point density where
  there are many points, the 1:1 line, pooled RMSE, bias, R2 and n;
* ``<prefix>_igbp_error.png``: each site's RMSE per flux, by IGBP class (boxes; the number of sites under each);
* ``<prefix>_seasonal_cycle.png`` (and ``_2.png``, ``_3.png``, ... beyond :data:`PANELS_PER_PAGE` sites): each
  site's mean seasonal cycle of GPP and NEE, observed and simulated (small multiples at a size that stays readable,
  sites ordered by IGBP class then name, at most :data:`PANELS_PER_PAGE` per picture).

All fluxes in gC m-2 d-1; NEE in the convention the caller states (printed on the pictures). With ``in_sample`` (a
(site,) mask of the checkpoint's training sites), in-sample sites are marked: their own row of scatter panels, a
cross instead of a dot in the error boxes, a grey panel in the seasonal cycles.
"""

from __future__ import annotations

import textwrap
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
PANELS_PER_PAGE = 24  # seasonal-cycle panels per picture (6 x 4): labels stay readable at any site count
PANEL_COLUMNS = 6
IN_SAMPLE_FACE = "#ededed"  # the panel colour of a training (in-sample) site


def site_plots(out_dir: Path, prefix: str, sites: np.ndarray, igbp: np.ndarray, times: np.ndarray,
               obs: dict[str, np.ndarray], sim: dict[str, np.ndarray], convention: SignConvention | str,
               title: str, in_sample: np.ndarray | None = None) -> list[Path]:
    """The pictures for (site, time) arrays ``obs`` and ``sim`` (gC m-2 d-1) at ``times`` (datetime64): scatter,
    error by class, and the seasonal-cycle pages. ``in_sample``: (site,) True for the checkpoint's training sites."""
    convention = SignConvention.parse(convention)
    out_dir = Path(out_dir)
    fluxes = [f for f in FLUXES if f in obs and f in sim]
    return [scatter(out_dir / f"{prefix}_scatter.png", obs, sim, fluxes, convention, title, in_sample),
            igbp_error(out_dir / f"{prefix}_igbp_error.png", igbp, obs, sim, fluxes, title, in_sample),
            *seasonal_cycles(out_dir / f"{prefix}_seasonal_cycle.png", sites, igbp, times, obs, sim, convention,
                             title, in_sample=in_sample)]


def _label(flux: str, convention: SignConvention) -> str:
    return f"NEE ({convention.formula})" if flux == "nee" else NAMES[flux]


def _groups(n_sites: int, in_sample: np.ndarray | None) -> list[tuple[str, np.ndarray]]:
    """The site groups a scatter shows as rows: all sites, or out-of-sample and in-sample apart when both exist."""
    if in_sample is None:
        return [("", np.ones(n_sites, dtype=bool))]
    groups = [(f"out-of-sample: {int((~in_sample).sum())} site(s)", ~in_sample),
              (f"IN-SAMPLE: {int(in_sample.sum())} training site(s)", in_sample)]
    return [(label, mask) for label, mask in groups if mask.any()]


def scatter(png: Path, obs: dict, sim: dict, fluxes: list[str], convention: SignConvention, title: str,
            in_sample: np.ndarray | None = None) -> Path:
    plt = pyplot()
    n_sites = next(iter(obs.values())).shape[0]
    groups = _groups(n_sites, in_sample)
    fig, axes = plt.subplots(len(groups), len(fluxes), figsize=(4.0 * len(fluxes), 3.6 * len(groups)), dpi=100,
                             squeeze=False, layout="constrained")
    for row, (group, mask) in zip(axes, groups, strict=True):
        for ax, f in zip(row, fluxes, strict=True):
            _scatter_panel(fig, ax, obs[f][mask].ravel(), sim[f][mask].ravel(), f)
            ax.set_title(f"{_label(f, convention)}{chr(10) + group if group else ''}", fontsize=10)
    fig.suptitle(f"{title}: observed against simulated", fontsize=10)
    return save_png(fig, png)


def _scatter_panel(fig, ax, o: np.ndarray, s: np.ndarray, f: str) -> None:
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
        cb = fig.colorbar(hb, ax=ax, shrink=0.7, pad=0.02)
        cb.set_label("points per cell", fontsize=7)
        cb.ax.tick_params(labelsize=7)
    else:
        ax.scatter(o, s, s=5, alpha=0.35, color=COLOURS[f], edgecolors="none")
    ax.plot([lo, hi], [lo, hi], color="k", lw=0.8, ls="--")
    ax.set_xlim(lo, hi)
    ax.set_ylim(lo, hi)
    ax.set_aspect("equal")
    ax.set_xlabel(f"observed [{UNIT}]", fontsize=8)
    ax.set_ylabel(f"simulated [{UNIT}]", fontsize=8)
    ax.tick_params(labelsize=7)
    ax.text(0.03, 0.97, f"RMSE {m['rmse']:.2f}\nbias {m['bias']:+.2f}\nR$^2$ {m['r2']:.2f}\nn {m['n']}",
            transform=ax.transAxes, va="top", fontsize=7.5, bbox=dict(facecolor="white", alpha=0.8, edgecolor="none"))


def _site_rmse(o: np.ndarray, s: np.ndarray) -> np.ndarray:
    ok = np.isfinite(o) & np.isfinite(s)
    n = ok.sum(axis=1)
    sq = np.where(ok, (s - o) ** 2, 0.0).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, np.sqrt(sq / np.maximum(n, 1)), np.nan)


def igbp_error(png: Path, igbp: np.ndarray, obs: dict, sim: dict, fluxes: list[str], title: str,
               in_sample: np.ndarray | None = None) -> Path:
    classes = [c for c in vocabulary.IGBP_CLASSES if (igbp == c).any()] + sorted(
        {str(c) for c in igbp if str(c) not in vocabulary.IGBP_CLASSES})
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(max(6.0, 0.75 * len(classes) + 2.0), 4.3), dpi=100, layout="constrained")
    width = 0.8 / len(fluxes)
    rng = np.random.default_rng(0)  # the same jitter every time: pictures that do not change between runs
    for k, f in enumerate(fluxes):
        rmse = _site_rmse(obs[f], sim[f])
        data = [rmse[(igbp == c) & np.isfinite(rmse)] for c in classes]
        pos = np.arange(len(classes)) + (k - (len(fluxes) - 1) / 2) * width
        keep = [i for i, d in enumerate(data) if d.size]
        if not keep:
            continue
        box = ax.boxplot([data[i] for i in keep], positions=pos[keep], widths=width * 0.85, patch_artist=True,
                         showfliers=in_sample is None, flierprops=dict(markersize=2), medianprops=dict(color="k"))
        for patch in box["boxes"]:
            patch.set_facecolor(COLOURS[f])
            patch.set_alpha(0.75 if in_sample is None else 0.45)
        ax.plot([], [], color=COLOURS[f], lw=6, alpha=0.75, label=NAMES[f])
        if in_sample is not None:  # every site as a point: dots out of sample, crosses for training sites
            x = pos[[classes.index(str(c)) for c in igbp]] + rng.uniform(-0.3, 0.3, igbp.size) * width
            for mask, marker in ((~in_sample, "."), (in_sample, "x")):
                ax.scatter(x[mask], rmse[mask], s=9, marker=marker, color="k", lw=0.6, zorder=3)
    if in_sample is not None:
        for mask, marker, label in ((~in_sample, ".", "site, out of sample"),
                                    (in_sample, "x", "training site (in-sample)")):
            if mask.any():
                ax.scatter([], [], s=9, marker=marker, color="k", lw=0.6, label=label)
    counts = [int((igbp == c).sum()) for c in classes]
    trained = [int(((igbp == c) & in_sample).sum()) if in_sample is not None else 0 for c in classes]
    ax.set_xticks(np.arange(len(classes)), [
        f"{c or '?'}\n{n} site{'s' * (n != 1)}" + (f"\n{t} train" if in_sample is not None else "")
        for c, n, t in zip(classes, counts, trained, strict=True)], fontsize=7)
    ax.set_ylabel(f"per-site RMSE [{UNIT}]", fontsize=8)
    ax.tick_params(axis="y", labelsize=7)
    handles, labels = ax.get_legend_handles_labels()
    fig.legend(handles, labels, fontsize=7, ncols=len(labels), loc="outside lower center", frameon=False)
    ax.set_ylim(0, None)
    ax.set_title(f"{title}: error by IGBP class", fontsize=10)
    ax.grid(axis="y", alpha=0.3)
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


def page_paths(png: Path, pages: int) -> list[Path]:
    """``png`` for the first page, ``<stem>_2.png``, ``<stem>_3.png``, ... for the others."""
    png = Path(png)
    return [png] + [png.with_name(f"{png.stem}_{k}{png.suffix}") for k in range(2, pages + 1)]


def seasonal_cycles(png: Path, sites: np.ndarray, igbp: np.ndarray, times: np.ndarray, obs: dict, sim: dict,
                    convention: SignConvention, title: str, ncols: int = PANEL_COLUMNS,
                    per_page: int = PANELS_PER_PAGE, in_sample: np.ndarray | None = None) -> list[Path]:
    """One panel per site (at most ``per_page`` per picture, ``ncols`` across): the pictures written."""
    months = (np.asarray(times).astype("datetime64[M]").astype(np.int64) % 12).astype(int)
    rank = {c: i for i, c in enumerate(vocabulary.IGBP_CLASSES)}
    order = sorted(range(len(sites)), key=lambda i: (rank.get(str(igbp[i]), 99), str(sites[i])))
    shown = [f for f in ("gpp", "nee") if f in obs and f in sim]
    clim = {(f, kind): _monthly_climatology(src[f], months) for f in shown for kind, src in (("obs", obs),
                                                                                              ("sim", sim))}
    pages = [order[k:k + per_page] for k in range(0, max(len(order), 1), per_page)] or [[]]
    paths = page_paths(png, len(pages))
    return [_cycle_page(path, page, k + 1, len(pages), len(order), sites, igbp, clim, shown, convention, title,
                        min(ncols, max(len(pages[0]), 1)), in_sample)
            for k, (path, page) in enumerate(zip(paths, pages, strict=True))]


def _cycle_page(png: Path, page: list[int], number: int, pages: int, n_sites: int, sites: np.ndarray,
                igbp: np.ndarray, clim: dict, shown: list[str], convention: SignConvention, title: str, ncols: int,
                in_sample: np.ndarray | None) -> Path:
    plt = pyplot()
    nrows = max(1, int(np.ceil(len(page) / ncols)))
    width = max(0.6 + 2.1 * ncols, 5.0)  # a few sites: wider panels, so that title and legend have room
    fig, axes = plt.subplots(nrows, ncols, figsize=(width, 1.2 + (1.75 if ncols > 2 else 2.6) * nrows), dpi=100,
                             squeeze=False, sharex=True, layout="constrained")
    x = np.arange(1, 13)
    for ax in axes.ravel()[len(page):]:
        ax.set_visible(False)
    for ax, i in zip(axes.ravel(), page, strict=False):
        for f in shown:
            ax.plot(x, clim[(f, "obs")][i], color=COLOURS[f], lw=0, marker="o", ms=2.5)
            ax.plot(x, clim[(f, "sim")][i], color=COLOURS[f], lw=1.2)
        ax.axhline(0.0, color="#999999", lw=0.5)
        trained = in_sample is not None and bool(in_sample[i])
        ax.set_title(f"{sites[i]} ({igbp[i] or '?'}){' train' if trained else ''}", fontsize=8, pad=2)
        if trained:
            ax.set_facecolor(IN_SAMPLE_FACE)
        ax.tick_params(labelsize=7, length=2, pad=1)
        ax.set_xticks([1, 4, 7, 10], ["Jan", "Apr", "Jul", "Oct"])
    handles = [plt.Line2D([], [], color=COLOURS[f], lw=1.2, marker="o", ms=3, label=NAMES[f]) for f in shown]
    if in_sample is not None and in_sample[page].any():
        from matplotlib.patches import Patch

        handles.append(Patch(facecolor=IN_SAMPLE_FACE, edgecolor="#999999", label="training site (in-sample)"))
    fig.legend(handles=handles, loc="outside lower center", fontsize=8, ncols=len(handles), frameon=False)
    nee = f"; NEE = {convention.formula.split('= ')[1]}" if "nee" in shown else ""
    paging = f" (page {number} of {pages}: {len(page)} of {n_sites} sites)" if pages > 1 else ""
    text = (f"{title}: mean seasonal cycle per site{paging} [{UNIT}], dots observed, lines simulated{nee}")
    width_chars = int(width * 100 / 6.5)  # about 6.5 px per character at 9 pt and 100 dpi
    fig.suptitle(textwrap.fill(text, max(width_chars, 40)), fontsize=9)
    return save_png(fig, png)
