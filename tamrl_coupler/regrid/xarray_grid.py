"""Grids from xarray objects, and a grid's coordinates as xarray: the xarray side of :class:`Regridder`.

Latitude and longitude are found from their CF attributes (``standard_name``, ``units``, ``axis``, through
cf_xarray), else by their usual names; their bounds from the CF ``bounds`` attribute (a CMIP file's ``lat_bnds`` on
``bnds``), else by the usual ``<name>_bnds`` / ``<name>_bounds`` names; a mask from a variable (``mask`` by default,
the xESMF convention, 1 = the cell takes part). What the file does not give is never guessed: a regular grid's bounds
are inferred only for uniformly spaced centres (:func:`~tamrl_coupler.regrid.grid.bounds_from_centres`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tamrl_coupler.errors import RegridError
from tamrl_coupler.regrid.grid import Grid
from tamrl_coupler.regrid.gridfiles import LAT_NAMES, LON_NAMES

BOUNDS_DIM = "bnds"  # the bounds dimension of grids made here (CMIP's name)


def is_xarray(obj: Any) -> bool:
    """Whether ``obj`` is an xarray Dataset or DataArray (without importing xarray for numpy/torch callers)."""
    return type(obj).__module__.split(".")[0] == "xarray" and hasattr(obj, "dims")


@dataclass
class XarrayLayout:
    """Where a grid lives in xarray objects: its dimensions (in :attr:`Grid.shape` order), its horizontal coordinate
    variables (attributes included) and their bounds variables (attached to Dataset results only: a DataArray cannot
    hold a coordinate on a dimension it does not have)."""

    dims: tuple[str, ...]
    coords: dict[str, Any] = field(default_factory=dict)  # name -> xarray.Variable
    bounds: dict[str, Any] = field(default_factory=dict)  # name -> xarray.Variable


def _find(obj: Any, key: str, names: tuple[str, ...]) -> str:
    import cf_xarray  # noqa: F401  (registers the .cf accessor)

    found = [n for n in obj.cf.coordinates.get(key, []) if n in obj.coords or n in getattr(obj, "data_vars", {})]
    if not found:
        found = [n for n in names if n in obj.coords or n in getattr(obj, "data_vars", {})]
    if not found:
        what = "DataArray" if not hasattr(obj, "data_vars") else "Dataset"
        raise RegridError(f"{what}: no {key} coordinate found (looked for standard_name {key!r}, units "
                          f"degrees_{'north' if key == 'latitude' else 'east'}, axis, and the names {list(names)})")
    return found[0]


def _bounds_name(obj: Any, name: str) -> str | None:
    if not hasattr(obj, "data_vars"):
        return None
    var = obj[name]
    for cand in (var.attrs.get("bounds"), var.encoding.get("bounds"), f"{name}_bnds", f"{name}_bounds",
                 f"bounds_{name}"):
        if cand and cand in obj.variables:
            return str(cand)
    return None


def _mask_values(obj: Any, mask: Any, dims: tuple[str, ...]) -> np.ndarray | None:
    if mask is None:
        mask = "mask" if hasattr(obj, "data_vars") and "mask" in obj.data_vars else None
        if mask is None:
            return None
    if isinstance(mask, str):
        if not hasattr(obj, "data_vars") or mask not in obj.variables:
            raise RegridError(f"mask variable {mask!r} is not in the grid's Dataset")
        mask = obj[mask]
    if is_xarray(mask):
        missing = [d for d in dims if d not in mask.dims]
        if missing or set(mask.dims) - set(dims):
            raise RegridError(f"mask {getattr(mask, 'name', '')!r} has dimensions {mask.dims}; expected the grid's "
                              f"{dims}")
        mask = mask.transpose(*dims).values
    m = np.asarray(mask)
    return np.where(np.isfinite(m), m, 0) if m.dtype.kind == "f" else m


def grid_from_xarray(obj: Any, mask: Any = None, name: str | None = None) -> tuple[Grid, XarrayLayout]:
    """The :class:`Grid` an xarray Dataset or DataArray is on, and where it lives in it.

    ``mask``: a variable name, a DataArray or an array (1 = active); default: the Dataset's ``mask`` variable."""
    lat_name = _find(obj, "latitude", LAT_NAMES)
    lon_name = _find(obj, "longitude", LON_NAMES)
    lat, lon = obj[lat_name], obj[lon_name]
    lat_b_name, lon_b_name = _bounds_name(obj, lat_name), _bounds_name(obj, lon_name)
    lat_b = obj[lat_b_name].values if lat_b_name else None
    lon_b = obj[lon_b_name].values if lon_b_name else None
    source = obj.encoding.get("source")
    name = name or (Path(source).stem if source else str(getattr(obj, "name", None) or "xarray grid"))
    if lat.ndim == 1 and lon.ndim == 1 and lat.dims != lon.dims:
        dims = (lat.dims[0], lon.dims[0])
        grid = Grid.regular(lat.values, lon.values, lat_b, lon_b, mask=_mask_values(obj, mask, dims), name=name)
    elif lat.ndim == 2 and lat.dims == lon.dims:
        dims = tuple(lat.dims)
        grid = Grid.curvilinear(lat.values, lon.values, lat_b, lon_b, mask=_mask_values(obj, mask, dims), name=name)
    elif lat.ndim == 1 and lat.dims == lon.dims:
        dims = tuple(lat.dims)
        m = _mask_values(obj, mask, dims)
        grid = (Grid.unstructured(lat.values, lon.values, lat_b, lon_b, mask=m, name=name) if lat_b is not None
                else Grid.points(lat.values, lon.values, name=name))
        if lat_b is None and m is not None:
            grid = grid.with_mask(m)
    else:
        raise RegridError(f"latitude {lat_name!r} {lat.dims} and longitude {lon_name!r} {lon.dims} form no regular "
                          "(1-D, 1-D), curvilinear (same 2-D) or unstructured (same 1-D) grid")
    coords = {n: obj[n].variable for n in (lat_name, lon_name)}
    bounds = {n: obj[n].variable for n in (lat_b_name, lon_b_name) if n}
    return grid, XarrayLayout(dims, coords, bounds)


def layout_of(obj: Any, grid: Grid) -> XarrayLayout:
    """Where ``grid`` (made from something else) lives in ``obj``: found like :func:`grid_from_xarray`, checked
    against the grid's shape."""
    lat = obj[_find(obj, "latitude", LAT_NAMES)]
    lon = obj[_find(obj, "longitude", LON_NAMES)]
    dims = (lat.dims[0], lon.dims[0]) if lat.ndim == 1 and lat.dims != lon.dims else tuple(lat.dims)
    shape = tuple(obj.sizes[d] for d in dims)
    if shape != grid.shape:
        raise RegridError(f"the field's grid {dict(zip(dims, shape, strict=True))} is not the regridder's source grid "
                          f"{grid.name!r} of shape {grid.shape}")
    return XarrayLayout(dims)


def layout_from_grid(grid: Grid, taken: dict[str, int] | None = None) -> XarrayLayout:
    """CF coordinates and bounds for a grid that came from a name or a file: ``lat``/``lon`` (1-D on a regular grid,
    2-D on ``y``/``x`` for a curvilinear one, 1-D on ``cell`` otherwise), bounds on ``bnds`` (or ``nv`` corners).

    ``taken``: the dimensions the fields already have (a clash of sizes picks another bounds dimension name)."""
    import xarray as xr

    taken = taken or {}

    def free(dim: str, size: int) -> str:
        while dim in taken and taken[dim] != size:
            dim += "_"
        return dim

    lat_attrs = {"standard_name": "latitude", "units": "degrees_north", "long_name": "latitude"}
    lon_attrs = {"standard_name": "longitude", "units": "degrees_east", "long_name": "longitude"}
    coords, bounds = {}, {}
    if grid.kind == "regular":
        dims = ("lat", "lon")
        bdim = free(BOUNDS_DIM, 2)
        for nm, vals, b, attrs, axis in (("lat", grid.lat1d, grid.lat_bounds, lat_attrs, "Y"),
                                         ("lon", grid.lon1d, grid.lon_bounds, lon_attrs, "X")):
            attrs = {**attrs, "axis": axis}
            if b is not None:
                attrs["bounds"] = f"{nm}_bnds"
                bounds[f"{nm}_bnds"] = xr.Variable((nm, bdim), np.asarray(b))
            coords[nm] = xr.Variable((nm,), np.asarray(vals), attrs)
        return XarrayLayout(dims, coords, bounds)
    dims = ("y", "x") if grid.kind == "curvilinear" else ("cell",)
    for nm, vals, corners, attrs in (("lat", grid.lat, grid.corner_lat, lat_attrs),
                                     ("lon", grid.lon, grid.corner_lon, lon_attrs)):
        attrs = dict(attrs)
        if corners is not None:
            attrs["bounds"] = f"{nm}_bnds"
            nv = free("nv", corners.shape[1])
            bounds[f"{nm}_bnds"] = xr.Variable((*dims, nv), corners.reshape(*grid.shape, corners.shape[1]))
        coords[nm] = xr.Variable(dims, vals.reshape(grid.shape), attrs)
    return XarrayLayout(dims, coords, bounds)
