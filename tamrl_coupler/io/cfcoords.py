"""Horizontal CF coordinates shared by the flux and prior writers: a regular lat/lon grid (with bounds) or a set of
sites written as a CF ``timeSeries`` feature."""

from __future__ import annotations

import numpy as np


def write_horizontal_coords(ds, kind: str, lat: np.ndarray, lon: np.ndarray, lat_bounds: np.ndarray | None,
                            lon_bounds: np.ndarray | None,
                            site_names: list[str] | None = None) -> tuple[tuple[str, ...], str | None]:
    """Create the horizontal dimensions and coordinate variables in ``ds`` (which already has the ``nv`` dimension).

    Returns the data variables' horizontal dimensions and their ``coordinates`` attribute (None on a regular grid).
    """
    import netCDF4

    if kind == "regular":
        ds.createDimension("lat", lat.size)
        ds.createDimension("lon", lon.size)
        for nm, vals, bnds, units, std, axis in (("lat", lat, lat_bounds, "degrees_north", "latitude", "Y"),
                                                 ("lon", lon, lon_bounds, "degrees_east", "longitude", "X")):
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
