"""Grid files in the formats the ESMF family uses: CF lat/lon (GRIDSPEC-like), SCRIP grid files, ESMF mesh, UGRID.

Readers return what a file says (:class:`GridParts`: which :class:`~tamrl_coupler.regrid.grid.Grid` constructor and
its arguments); the Grid type builds itself from them, so the file formats sit below the type they describe.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from tamrl_coupler.errors import RegridError
from tamrl_coupler.ncfiles import open_netcdf
from tamrl_coupler.regrid.sphere import lonlat_to_xyz


class GridGeometry(Protocol):
    """What a grid file is written from (a :class:`~tamrl_coupler.regrid.grid.Grid` is one)."""

    shape: tuple[int, ...]
    lat: np.ndarray
    lon: np.ndarray
    mask: np.ndarray | None
    corner_lat: np.ndarray | None
    corner_lon: np.ndarray | None

    @property
    def size(self) -> int: ...

    @property
    def has_bounds(self) -> bool: ...

LAT_NAMES = ("lat", "latitude", "nav_lat", "y", "yc", "TLAT", "XLAT")
LON_NAMES = ("lon", "longitude", "nav_lon", "x", "xc", "TLONG", "XLONG")


def _deg(var, values: np.ndarray) -> np.ndarray:
    units = str(getattr(var, "units", "degrees")).lower()
    return np.rad2deg(values) if units.startswith("rad") else values


def _filled(var) -> np.ndarray:
    var.set_auto_mask(False)
    return np.asarray(var[...])


def find_coord(ds: Any, names: tuple[str, ...], standard_name: str) -> Any:
    """The latitude or longitude variable: by standard name, else by a usual name, else by its units."""
    for v in ds.variables.values():
        if getattr(v, "standard_name", None) == standard_name:
            return v
    for n in names:
        if n in ds.variables:
            return ds.variables[n]
    units = "degrees_north" if "lat" in standard_name else "degrees_east"
    for v in ds.variables.values():
        if getattr(v, "units", None) == units:
            return v
    return None


@dataclass
class GridParts:
    """A grid as read from a file: ``Grid.<kind>(**args)`` (``kind`` "" : the plain constructor), and the cell
    areas the file gives (steradians), if any."""

    kind: str
    args: dict[str, Any]
    area: np.ndarray | None = None


def read_grid_file(path: Path, what: str = "grid file") -> GridParts:
    """What the grid file at ``path`` describes (SCRIP, ESMF mesh, UGRID or CF lat/lon, told apart by content);
    ``what`` names the file in errors (a regridded data file is an "input file")."""
    with open_netcdf(path, what, RegridError) as ds:
        name = path.stem
        if "grid_center_lat" in ds.variables:
            return _read_scrip(ds, name, path)
        if "nodeCoords" in ds.variables and "elementConn" in ds.variables:
            return _read_esmf_mesh(ds, name, path)
        for v in ds.variables.values():
            if getattr(v, "cf_role", None) == "mesh_topology":
                return _read_ugrid(ds, v, name, path)
        return _read_cf(ds, name, path)


def _read_scrip(ds, name: str, path: Path) -> GridParts:
    v = ds.variables
    lat = _deg(v["grid_center_lat"], _filled(v["grid_center_lat"]).astype(np.float64))
    lon = _deg(v["grid_center_lon"], _filled(v["grid_center_lon"]).astype(np.float64))
    clat = clon = None
    if "grid_corner_lat" in v:
        clat = _deg(v["grid_corner_lat"], _filled(v["grid_corner_lat"]).astype(np.float64))
        clon = _deg(v["grid_corner_lon"], _filled(v["grid_corner_lon"]).astype(np.float64))
    mask = _filled(v["grid_imask"]) if "grid_imask" in v else None
    dims = [int(d) for d in _filled(v["grid_dims"])] if "grid_dims" in v else [lat.size]
    if len(dims) == 2:  # SCRIP stores dims as (nx, ny) Fortran order
        nx, ny = dims
        if nx * ny != lat.size:
            raise RegridError(f"SCRIP grid file {path}: grid_dims {dims} do not multiply to grid_size {lat.size}")
        kind, shape = "curvilinear", (ny, nx)
    else:
        kind, shape = "unstructured", (lat.size,)
    area = _filled(v["grid_area"]).astype(np.float64) if "grid_area" in v else None
    return GridParts("", dict(kind=kind, shape=shape, lat=lat, lon=lon, corner_lat=clat, corner_lon=clon, mask=mask,
                              name=name), area)


def _polygons(nodes_lon, nodes_lat, conn: np.ndarray, counts: np.ndarray | None, fill) -> tuple:
    """Connectivity (n, maxv), 0-based, padded -> corner arrays padded by repeating the last vertex."""
    conn = conn.astype(np.int64)
    valid = conn >= 0 if fill is None else (conn != fill) & (conn >= 0)
    if counts is not None:
        valid &= np.arange(conn.shape[1])[None, :] < counts[:, None]
    nvalid = valid.sum(1)
    if np.any(nvalid < 3):
        bad = int(np.argmax(nvalid < 3))
        raise RegridError(f"mesh cell {bad} has {int(nvalid[bad])} vertices; a cell needs at least 3")
    valid = np.arange(conn.shape[1])[None, :] < nvalid[:, None]  # fill values trail the vertices
    last = conn[np.arange(conn.shape[0]), nvalid - 1]
    filled = np.where(valid, conn, last[:, None])
    return nodes_lat[filled], nodes_lon[filled], nvalid


def _centres(clat: np.ndarray, clon: np.ndarray, nvalid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cell centres as the normalised mean of each polygon's own (not padded) vertices."""
    w = (np.arange(clat.shape[1])[None, :] < nvalid[:, None]).astype(np.float64)
    v = (lonlat_to_xyz(clon, clat) * w[:, :, None]).sum(axis=1)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    return np.rad2deg(np.arcsin(np.clip(v[:, 2], -1, 1))), np.rad2deg(np.arctan2(v[:, 1], v[:, 0]))


def _read_esmf_mesh(ds, name: str, path: Path) -> GridParts:
    v = ds.variables
    nodes = _deg(v["nodeCoords"], _filled(v["nodeCoords"]).astype(np.float64))
    conn = _filled(v["elementConn"]).astype(np.int64)
    start = int(getattr(v["elementConn"], "start_index", 1))
    counts = _filled(v["numElementConn"]).astype(np.int64) if "numElementConn" in v else None
    conn = np.where(conn >= start, conn - start, -1)
    clat, clon, nvalid = _polygons(nodes[:, 0], nodes[:, 1], conn, counts, None)
    if "centerCoords" in v:
        cc = _deg(v["centerCoords"], _filled(v["centerCoords"]).astype(np.float64))
        lon, lat = cc[:, 0], cc[:, 1]
    else:
        lat, lon = _centres(clat, clon, nvalid)
    mask = _filled(v["elementMask"]) if "elementMask" in v else None
    return GridParts("unstructured", dict(lat=lat, lon=lon, corner_lat=clat, corner_lon=clon, mask=mask, name=name))


def _read_ugrid(ds, topo, name: str, path: Path) -> GridParts:
    v = ds.variables
    fnc = getattr(topo, "face_node_connectivity", None)
    if fnc is None or fnc not in v:
        raise RegridError(f"UGRID file {path}: mesh {topo.name!r} has no face_node_connectivity variable")
    nx_name, ny_name = str(topo.node_coordinates).split()[:2]
    nlon = _deg(v[nx_name], _filled(v[nx_name]).astype(np.float64))
    nlat = _deg(v[ny_name], _filled(v[ny_name]).astype(np.float64))
    if getattr(v[nx_name], "standard_name", "") == "latitude":
        nlon, nlat = nlat, nlon
    cv = v[fnc]
    conn = _filled(cv).astype(np.int64)
    fill = getattr(cv, "_FillValue", None)
    start = int(getattr(cv, "start_index", 0))
    if fill is not None:
        conn = np.where(conn == fill, -1, conn - start)
    else:
        conn = np.where(conn >= start, conn - start, -1)
    clat, clon, nvalid = _polygons(nlon, nlat, conn, None, None)
    fc = getattr(topo, "face_coordinates", None)
    if fc:
        fx, fy = str(fc).split()[:2]
        lon = _deg(v[fx], _filled(v[fx]).astype(np.float64))
        lat = _deg(v[fy], _filled(v[fy]).astype(np.float64))
        if getattr(v[fx], "standard_name", "") == "latitude":
            lon, lat = lat, lon
    else:
        lat, lon = _centres(clat, clon, nvalid)
    return GridParts("unstructured", dict(lat=lat, lon=lon, corner_lat=clat, corner_lon=clon, name=name))


def _bounds_var(ds, var):
    b = getattr(var, "bounds", None)
    if b and b in ds.variables:
        return _filled(ds.variables[b]).astype(np.float64)
    for cand in (f"{var.name}_bnds", f"{var.name}_bounds"):
        if cand in ds.variables:
            return _filled(ds.variables[cand]).astype(np.float64)
    return None


def _read_cf(ds, name: str, path: Path) -> GridParts:
    latv = find_coord(ds, LAT_NAMES, "latitude")
    lonv = find_coord(ds, LON_NAMES, "longitude")
    if latv is None or lonv is None:
        raise RegridError(f"grid file {path}: no latitude/longitude coordinates found (looked for standard_name "
                          "latitude/longitude, names lat/lon, SCRIP grid_center_lat, ESMF nodeCoords, UGRID mesh)")
    lat = _filled(latv).astype(np.float64)
    lon = _filled(lonv).astype(np.float64)
    mask = None
    if "mask" in ds.variables:
        mask = _filled(ds.variables["mask"])
    if lat.ndim == 1 and lon.ndim == 1:
        if mask is not None and mask.size != lat.size * lon.size:
            mask = None
        return GridParts("regular", dict(lat=lat, lon=lon, lat_bounds=_bounds_var(ds, latv),
                                         lon_bounds=_bounds_var(ds, lonv), mask=mask, name=name))
    if lat.ndim == 2 and lat.shape == lon.shape:
        blat, blon = _bounds_var(ds, latv), _bounds_var(ds, lonv)
        if mask is not None and mask.size != lat.size:
            mask = None
        return GridParts("curvilinear", dict(lat2d=lat, lon2d=lon, corner_lat=blat, corner_lon=blon, mask=mask,
                                             name=name))
    if lat.ndim == 1 and lat.shape == lon.shape:
        blat, blon = _bounds_var(ds, latv), _bounds_var(ds, lonv)
        return GridParts("unstructured", dict(lat=lat, lon=lon, corner_lat=blat, corner_lon=blon, mask=mask,
                                              name=name))
    raise RegridError(f"grid file {path}: latitude {latv.name}{lat.shape} and longitude {lonv.name}{lon.shape} "
                      "do not form a regular (1-D, 1-D), curvilinear (2-D) or unstructured (same 1-D) grid")


def write_scrip_grid(grid: GridGeometry, path: Path) -> None:
    """Write a SCRIP grid file (degrees), the format ESMF_RegridWeightGen and CDO both read."""
    import netCDF4

    with netCDF4.Dataset(path, "w") as ds:
        ds.createDimension("grid_size", grid.size)
        ds.createDimension("grid_rank", len(grid.shape))
        dims = ds.createVariable("grid_dims", "i4", ("grid_rank",))
        dims[:] = list(reversed(grid.shape))
        for nm, arr in (("grid_center_lat", grid.lat), ("grid_center_lon", grid.lon)):
            var = ds.createVariable(nm, "f8", ("grid_size",))
            var.units = "degrees"
            var[:] = arr
        im = ds.createVariable("grid_imask", "i4", ("grid_size",))
        im[:] = grid.mask if grid.mask is not None else np.ones(grid.size, np.int32)
        if grid.has_bounds:
            ds.createDimension("grid_corners", grid.corner_lat.shape[1])
            for nm, arr in (("grid_corner_lat", grid.corner_lat), ("grid_corner_lon", grid.corner_lon)):
                var = ds.createVariable(nm, "f8", ("grid_size", "grid_corners"))
                var.units = "degrees"
                var[:] = arr
