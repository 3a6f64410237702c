"""Pictures of a run: the demo's map of time-mean NEE."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tamrl_coupler.atomicfile import atomic_path
from tamrl_coupler.constants import SECONDS_PER_DAY
from tamrl_coupler.io.fluxfile import read_flux_file


def nee_map(flux_file: Path, png: Path) -> Path:
    """Time-mean NEE on the host grid (regular grids), land cells only, diverging colours centred on zero."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ff = read_flux_file(flux_file, ("nee",))
    nee, lat, lon = ff.fields["nee"], ff.grid.lat, ff.grid.lon
    units, positive, conv = ff.unit.udunits, ff.convention.cf_positive, ff.convention.formula
    t, tunits = ff.bounds, ff.time_units
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
    days = (t[-1, 1] - t[0, 0]) / SECONDS_PER_DAY if len(t) else 0
    ax.set_title(f"TAM-RL NEE, mean over {days:g} days ({tunits.replace('seconds since ', 'from ')})\n{conv}",
                 fontsize=9)
    ax.set_xlabel("longitude")
    ax.set_ylabel("latitude")
    ax.set_xlim(-180, 180)
    ax.set_ylim(-60, 90)
    fig.tight_layout()
    try:
        with atomic_path(png, "NEE map") as tmp:
            fig.savefig(tmp, format="png")
    finally:
        plt.close(fig)
    return png
