"""Pictures of a run: the demo's map of time-mean NEE."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def nee_map(flux_file: Path, png: Path) -> Path:
    """Time-mean NEE on the host grid (regular grids), land cells only, diverging colours centred on zero."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import netCDF4

    with netCDF4.Dataset(flux_file) as ds:
        nee = np.ma.filled(ds["nee"][:].astype(np.float64), np.nan)
        lat, lon = ds["lat"][:], ds["lon"][:]
        units = ds["nee"].units
        positive = getattr(ds["nee"], "positive", "")
        conv = getattr(ds, "nee_definition", "")
        t = ds["time_bnds"][:]
        tunits = ds["time"].units
    with np.errstate(invalid="ignore"):
        valid = np.isfinite(nee).sum(axis=0)
        mean = np.where(valid > 0, np.nansum(nee, axis=0) / np.maximum(valid, 1), np.nan)
    lim = np.nanmax(np.abs(mean)) if np.isfinite(mean).any() else 1.0
    fig, ax = plt.subplots(figsize=(9, 4.2), dpi=110)
    lon_plot = np.where(lon > 180, lon - 360, lon)
    order = np.argsort(lon_plot)
    m = ax.pcolormesh(lon_plot[order], lat, mean[:, order], cmap="RdBu", vmin=-lim, vmax=lim, shading="nearest")
    cb = fig.colorbar(m, ax=ax, shrink=0.85)
    cb.set_label(f"NEE [{units}], positive {positive}")
    days = (t[-1, 1] - t[0, 0]) / 86400.0 if len(t) else 0
    ax.set_title(f"TAM-RL NEE, mean over {days:g} days ({tunits.replace('seconds since ', 'from ')})\n{conv}",
                 fontsize=9)
    ax.set_xlabel("longitude")
    ax.set_ylabel("latitude")
    ax.set_xlim(-180, 180)
    ax.set_ylim(-60, 90)
    fig.tight_layout()
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png)
    plt.close(fig)
    return png
