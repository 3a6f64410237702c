"""Global attributes that describe a file's horizontal grid, which regridding makes wrong.

A regridded file keeps its source's global attributes (title, institution, references, history ...) except those
that state the source grid's geometry: GLDAS/LIS's ``DX``, ``SOUTH_WEST_CORNER_LAT``, ``MAP_PROJECTION``, ACDD's
``geospatial_*`` extents and resolutions, CMIP's ``grid``, ``grid_label`` and ``nominal_resolution``, NASA's
``NorthernmostLatitude`` ... Those are dropped, and the caller records which in the output's history.
"""

from __future__ import annotations

import re
from typing import Any

# exact names (compared case-insensitively) and name patterns of grid-describing global attributes
GRID_ATTRIBUTES = frozenset(a.lower() for a in (
    "DX", "DY", "SOUTH_WEST_CORNER_LAT", "SOUTH_WEST_CORNER_LON", "NORTH_EAST_CORNER_LAT", "NORTH_EAST_CORNER_LON",
    "MAP_PROJECTION", "map_projection_name", "grid", "grid_label", "nominal_resolution", "gridtype", "grid_type",
    "resolution", "spatial_resolution", "LatitudeResolution", "LongitudeResolution", "NorthernmostLatitude",
    "SouthernmostLatitude", "WesternmostLongitude", "EasternmostLongitude", "lat_resolution", "lon_resolution",
))
GRID_ATTRIBUTE_PATTERNS = (re.compile(r"^geospatial_(lat|lon|bounds)", re.IGNORECASE),)


def is_grid_attribute(name: str) -> bool:
    """Whether global attribute ``name`` describes the horizontal grid."""
    return name.lower() in GRID_ATTRIBUTES or any(p.match(name) for p in GRID_ATTRIBUTE_PATTERNS)


def drop_grid_attributes(attrs: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """``attrs`` without the grid-describing ones, and the names dropped (in their order)."""
    dropped = [k for k in attrs if is_grid_attribute(k)]
    return {k: v for k, v in attrs.items() if k not in dropped}, dropped


def weights_origin(backend: str, weights: Any = None) -> str:
    """Which backend made the weights (``native``, ``cdo``, ``esmpy``, ``... (cached)``), or the weight file read."""
    if backend == "file":
        return f"read from the weight file {weights}" if weights is not None else "given as a Weights object"
    return f"made by the {backend} backend"


def regrid_provenance(input_name: str, grid: Any, method: str, backend: str, weights: Any, dropped: list[str],
                      history: str) -> dict[str, str]:
    """The global attributes a regridded file gets: ``regrid_weights`` (which backend made the weights) and a
    timestamped ``history`` line that says so too, and which source-grid attributes were dropped."""
    import datetime

    origin = weights_origin(backend, weights)
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    line = f"{stamp}: tamrl-coupler regrid {input_name} --grid {grid} --method {method} ({method} weights {origin})"
    if dropped:
        line += f"; dropped the source grid's global attributes {', '.join(dropped)}"
    return {"regrid_weights": f"{method} weights {origin}", "history": (line + "\n" + str(history)).strip()}
