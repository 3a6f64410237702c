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
    vertices: tuple[str, ...] = ()  # xESMF vertex variables (lat_b, lon_b) of the grid: not carried to results


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


def _vertex_bounds(lat_b: np.ndarray, lon_b: np.ndarray, lat: Any, lon: Any) -> tuple[np.ndarray, np.ndarray]:
    """xESMF's vertex arrays ``lat_b``/``lon_b`` ((n+1,) each for a rectilinear grid, (ny+1, nx+1) for a
    curvilinear one): CF bounds (n, 2) for 1-D vertices of 1-D centres, else vertex arrays (ny+1, nx+1) (3-D
    ``(1, ny+1, nx+1)`` marks vertices of 1-D centres, a curvilinear grid)."""
    lat_b, lon_b = np.asarray(lat_b, np.float64), np.asarray(lon_b, np.float64)
    if np.ndim(lat) == 1 and np.ndim(lon) == 1 and lat_b.ndim == 1 and lon_b.ndim == 1:
        if lat_b.size != np.size(lat) + 1 or lon_b.size != np.size(lon) + 1:
            raise RegridError(f"lat_b/lon_b have {lat_b.size}/{lon_b.size} values; a grid of {np.size(lat)} x "
                              f"{np.size(lon)} cells needs {np.size(lat) + 1} and {np.size(lon) + 1} vertices")
        return np.stack([lat_b[:-1], lat_b[1:]], 1), np.stack([lon_b[:-1], lon_b[1:]], 1)
    shape = np.shape(lat) if np.ndim(lat) == 2 else (np.size(lat), np.size(lon))
    if lat_b.ndim == 1 and lon_b.ndim == 1:
        lon_b, lat_b = np.meshgrid(lon_b, lat_b)
    if lat_b.shape != (shape[0] + 1, shape[1] + 1) or lon_b.shape != lat_b.shape:
        raise RegridError(f"lat_b {lat_b.shape} / lon_b {lon_b.shape}: a grid of {shape} cells needs vertex arrays "
                          f"of shape {(shape[0] + 1, shape[1] + 1)}")
    return (lat_b, lon_b) if np.ndim(lat) == 2 else (lat_b[None], lon_b[None])


def grid_from_dict(d: dict, locstream: bool = False, mask: Any = None, name: str = "dict grid") -> Grid:
    """xESMF's dictionary grid: ``lat``/``lon`` (1-D for rectilinear, 2-D for curvilinear), optional ``lat_b``/
    ``lon_b`` vertices and ``mask`` (1 = active); ``locstream``: ``lat``/``lon`` are 1-D locations."""
    missing = [k for k in ("lat", "lon") if k not in d]
    if missing:
        raise RegridError(f"grid dictionary has no {missing}; expected keys lat, lon (and lat_b, lon_b for "
                          f"conservative methods, mask), got {sorted(d)}")
    lat, lon = np.asarray(d["lat"], np.float64), np.asarray(d["lon"], np.float64)
    mask = d.get("mask") if mask is None else mask
    if locstream:
        if lat.ndim != 1 or lat.shape != lon.shape:
            raise RegridError(f"a locstream needs 1-D lat and lon of one length, got {lat.shape} and {lon.shape}")
        g = Grid.points(lat, lon, name=name)
        return g.with_mask(np.asarray(mask)) if mask is not None else g
    has_b = "lat_b" in d and "lon_b" in d
    if lat.ndim == 1 and lon.ndim == 1:
        lat_bounds = lon_bounds = None
        if has_b:
            lat_bounds, lon_bounds = _vertex_bounds(d["lat_b"], d["lon_b"], lat, lon)
            if lat_bounds.ndim == 3:  # 2-D vertices of a rectilinear grid: a curvilinear grid
                la2, lo2 = np.meshgrid(lat, lon, indexing="ij")
                return Grid.curvilinear(la2, lo2, lat_bounds[0], lon_bounds[0], mask=mask, name=name)
        return Grid.regular(lat, lon, lat_bounds, lon_bounds, mask=None if mask is None else np.asarray(mask),
                            name=name, infer_bounds=True)
    if lat.ndim == 2 and lat.shape == lon.shape:
        vlat, vlon = _vertex_bounds(d["lat_b"], d["lon_b"], lat, lon) if has_b else (None, None)
        return Grid.curvilinear(lat, lon, vlat, vlon, mask=mask, name=name)
    raise RegridError(f"grid dictionary: lat {lat.shape} and lon {lon.shape} form no rectilinear (1-D, 1-D) or "
                      "curvilinear (same 2-D) grid; pass locstream_in/out=True for 1-D locations")


def grid_from_xarray(obj: Any, mask: Any = None, name: str | None = None, locstream: bool = False,
                     dims: tuple[str, ...] | None = None) -> tuple[Grid, XarrayLayout]:
    """The :class:`Grid` an xarray Dataset or DataArray is on, and where it lives in it.

    ``mask``: a variable name, a DataArray or an array (1 = active); default: the Dataset's ``mask`` variable.
    Bounds: CF ``bounds`` (or ``<name>_bnds``), else xESMF's vertex variables ``lat_b``/``lon_b``.
    ``locstream``: the coordinates are 1-D locations (xESMF's ``locstream_in/out``); ``dims``: the grid's
    dimension names (xESMF's ``input_dims``/``output_dims``), checked against the coordinates'."""
    lat_name = _find(obj, "latitude", LAT_NAMES)
    lon_name = _find(obj, "longitude", LON_NAMES)
    lat, lon = obj[lat_name], obj[lon_name]
    lat_b_name, lon_b_name = _bounds_name(obj, lat_name), _bounds_name(obj, lon_name)
    lat_b = obj[lat_b_name].values if lat_b_name else None
    lon_b = obj[lon_b_name].values if lon_b_name else None
    source = obj.encoding.get("source")
    name = name or (Path(source).stem if source else str(getattr(obj, "name", None) or "xarray grid"))
    if lat_b is None and "lat_b" in obj.variables and "lon_b" in obj.variables and not locstream:
        lat_b, lon_b = _vertex_bounds(obj["lat_b"].values, obj["lon_b"].values, lat.values, lon.values)
        lat_b_name, lon_b_name = "lat_b", "lon_b"
    if dims is not None and tuple(dims) != (tuple(lat.dims) + tuple(lon.dims) if lat.ndim == 1 and lat.dims
                                            != lon.dims else tuple(lat.dims)):
        raise RegridError(f"input_dims/output_dims {tuple(dims)} are not the dimensions of the grid's coordinates "
                          f"{lat_name!r} {lat.dims} and {lon_name!r} {lon.dims}")
    if locstream:
        if lat.ndim != 1 or lat.dims != lon.dims:
            raise RegridError(f"a locstream needs 1-D {lat_name!r} and {lon_name!r} on one dimension, got "
                              f"{lat.dims} and {lon.dims}")
        dims = tuple(lat.dims)
        grid = Grid.points(lat.values, lon.values, name=name)
        m = _mask_values(obj, mask, dims)
        grid = grid.with_mask(m) if m is not None else grid
    elif lat.ndim == 1 and lon.ndim == 1 and lat.dims != lon.dims:
        dims = (lat.dims[0], lon.dims[0])
        if lat_b is not None and np.ndim(lat_b) == 3:  # 2-D vertices given for 1-D centres
            la2, lo2 = np.meshgrid(lat.values, lon.values, indexing="ij")
            grid = Grid.curvilinear(la2, lo2, lat_b[0], lon_b[0], mask=_mask_values(obj, mask, dims), name=name)
        else:
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
    vertices = tuple(n for n in (lat_b_name, lon_b_name) if n in ("lat_b", "lon_b"))
    bounds = {n: obj[n].variable for n in (lat_b_name, lon_b_name) if n and n not in vertices}
    return grid, XarrayLayout(dims, coords, bounds, vertices)


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
