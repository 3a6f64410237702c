"""Horizontal CF coordinates of the product's files: a regular lat/lon grid (with bounds) or a set of sites written
as a CF ``timeSeries`` feature; written by the flux and prior writers, read back by the flux-file reader."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass
class HostGridInfo:
    """The horizontal layout of a file's fields (global, flat C order)."""

    kind: str  # "regular" | "points"
    lat: np.ndarray  # regular: 1-D centres (ny,); points: (n,)
    lon: np.ndarray
    lat_bounds: np.ndarray | None = None  # regular: (ny, 2)
    lon_bounds: np.ndarray | None = None
    site_names: list[str] | None = None

    @property
    def shape(self) -> tuple[int, ...]:
        return (self.lat.size, self.lon.size) if self.kind == "regular" else (self.lat.size,)

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))


def write_horizontal_coords(ds: Any, grid: HostGridInfo) -> tuple[tuple[str, ...], str | None]:
    """Create the horizontal dimensions and coordinate variables in ``ds`` (which already has the ``nv`` dimension).

    Returns the data variables' horizontal dimensions and their ``coordinates`` attribute (None on a regular grid).
    """
    import netCDF4

    kind, lat, lon, site_names = grid.kind, grid.lat, grid.lon, grid.site_names

    if kind == "regular":
        ds.createDimension("lat", lat.size)
        ds.createDimension("lon", lon.size)
        for nm, vals, bnds, units, std, axis in (("lat", lat, grid.lat_bounds, "degrees_north", "latitude", "Y"),
                                                 ("lon", lon, grid.lon_bounds, "degrees_east", "longitude", "X")):
            v = ds.createVariable(nm, "f8", (nm,))
            v.units, v.standard_name, v.axis = units, std, axis
            v[:] = vals
            if bnds is not None:
                v.bounds = f"{nm}_bnds"
                ds.createVariable(f"{nm}_bnds", "f8", (nm, "nv"))[:] = bnds
        return ("lat", "lon"), None
    ds.setncattr("featureType", "timeSeries")
    ds.createDimension("site", lat.size)
    for nm, vals, units, std in (("lat", lat, "degrees_north", "latitude"), ("lon", lon, "degrees_east", "longitude")):
        v = ds.createVariable(nm, "f8", ("site",))
        v.units, v.standard_name = units, std
        v[:] = vals
    if site_names is None:
        return ("site",), "lat lon"
    width = max(1, max(len(n) for n in site_names))
    ds.createDimension("name_strlen", width)
    s = ds.createVariable("site_name", "S1", ("site", "name_strlen"))
    s.cf_role = "timeseries_id"
    s.long_name = "site identifier"
    s[:] = netCDF4.stringtochar(np.array(site_names, dtype=f"S{width}"))
    return ("site",), "lat lon site_name"


def read_horizontal_coords(ds: Any) -> HostGridInfo:
    """The inverse of :func:`write_horizontal_coords`."""
    import netCDF4

    v = ds.variables
    lat, lon = np.asarray(v["lat"][:], dtype=np.float64), np.asarray(v["lon"][:], dtype=np.float64)
    if "lat" in ds.dimensions:
        bounds = [np.asarray(v[f"{c}_bnds"][:], dtype=np.float64) if f"{c}_bnds" in v else None for c in ("lat", "lon")]
        return HostGridInfo("regular", lat, lon, *bounds)
    names = None
    if "site_name" in v:
        names = [str(s) for s in netCDF4.chartostring(v["site_name"][:])]
    return HostGridInfo("points", lat, lon, site_names=names)
