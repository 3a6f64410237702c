"""Regrid the lat/lon variables of a NetCDF file, keeping attributes and the variables that are not on the grid."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tamrl_coupler.errors import RegridError
from tamrl_coupler.ncfiles import AtomicNetCDF, open_netcdf
from tamrl_coupler.regrid.grid import Grid
from tamrl_coupler.regrid.gridattrs import drop_grid_attributes, regrid_provenance

SKIP_ATTRS = {"_FillValue", "scale_factor", "add_offset", "missing_value", "valid_range", "valid_min", "valid_max",
              "vmin", "vmax", "coordinates", "grid_mapping", "bounds"}


def _spatial_dims(ds, grid: Grid) -> tuple[tuple[str, ...], set[str]]:
    """The grid's dimensions in the file, and the coordinate variables (lat, lon, their bounds) not to copy."""
    from tamrl_coupler.regrid.gridfiles import LAT_NAMES, LON_NAMES, find_coord

    latv = find_coord(ds, LAT_NAMES, "latitude")
    lonv = find_coord(ds, LON_NAMES, "longitude")
    coords = {latv.name, lonv.name}
    for v in (latv, lonv):
        for cand in (getattr(v, "bounds", None), f"{v.name}_bnds", f"{v.name}_bounds"):
            if cand and cand in ds.variables:
                coords.add(cand)
    if grid.kind == "regular":
        return (latv.dimensions[0], lonv.dimensions[0]), coords
    return tuple(latv.dimensions), coords


def _bounds_dim(out) -> str:
    """A dimension of length 2 for the bounds: ``nv`` (CF's usual name, perhaps copied from the input with its
    time bounds), or another name when ``nv`` exists with another length."""
    for name in ("nv", "nv2", "bnds2"):
        if name not in out.dimensions:
            out.createDimension(name, 2)
            return name
        if len(out.dimensions[name]) == 2:
            return name
    raise RegridError("no free name for a bounds dimension of length 2 (nv, nv2, bnds2 are taken)")


def _write_grid(out, g: Grid) -> tuple[str, ...]:
    if g.kind == "regular":
        out.createDimension("lat", g.shape[0])
        out.createDimension("lon", g.shape[1])
        nv = _bounds_dim(out)
        for nm, vals, b, units, std in (("lat", g.lat1d, g.lat_bounds, "degrees_north", "latitude"),
                                        ("lon", g.lon1d, g.lon_bounds, "degrees_east", "longitude")):
            v = out.createVariable(nm, "f8", (nm,))
            v[:] = vals
            v.units, v.standard_name = units, std
            if b is not None:
                v.bounds = f"{nm}_bnds"
                out.createVariable(f"{nm}_bnds", "f8", (nm, nv))[:] = b
        return ("lat", "lon")
    dims = ("y", "x") if g.kind == "curvilinear" else ("ncells",)
    for d, n in zip(dims, g.shape, strict=True):
        out.createDimension(d, n)
    for nm, vals, units, std in (("lat", g.lat, "degrees_north", "latitude"), ("lon", g.lon, "degrees_east",
                                                                               "longitude")):
        v = out.createVariable(nm, "f8", dims)
        v[:] = vals.reshape(g.shape)
        v.units, v.standard_name = units, std
    return dims


def regrid_file(inp: Path, grid, out_path: Path, method: str = "conservative", weights=None, backend="auto",
                cache_dir=None, variables=None) -> int:
    """Regrid every numeric variable on ``inp``'s lat/lon grid to ``grid`` (a name, file or Grid) into
    ``out_path``, written atomically; returns the number of variables regridded."""
    import netCDF4

    from tamrl_coupler.regrid.regridder import Regridder

    src = Grid.from_file(inp, what="input file")
    dst = Grid.resolve(grid)
    rg = Regridder(src, dst, method=method, backend=backend, weights=weights, cache_dir=cache_dir)
    n_done = 0
    with open_netcdf(inp, "input file", RegridError) as ds:
        sdims, skip = _spatial_dims(ds, src)
        on_grid = [n for n, v in ds.variables.items() if n not in skip and v.dimensions[-len(sdims):] == sdims
                   and np.issubdtype(v.dtype, np.number)]
        if variables:
            missing = sorted(set(variables) - set(on_grid))
            if missing:
                raise RegridError(f"{inp}: variable(s) {missing} not found on the lat/lon grid; on it: {on_grid}")
            on_grid = [n for n in on_grid if n in variables]
        if not on_grid:
            raise RegridError(f"{inp}: no variable has the grid dimensions {sdims}; nothing to regrid")
        target = AtomicNetCDF(out_path, "regridded file")
        out = target.ds
        try:
            kept, dropped = drop_grid_attributes({k: ds.getncattr(k) for k in ds.ncattrs()})
            out.setncatts(kept)
            for name, d in ds.dimensions.items():
                if name not in sdims:
                    out.createDimension(name, None if d.isunlimited() else len(d))
            gdims = _write_grid(out, dst)
            for name, v in ds.variables.items():
                if name in skip or (name not in on_grid and set(v.dimensions) & set(sdims)):
                    continue
                if name in on_grid:
                    continue
                nv = out.createVariable(name, v.dtype, v.dimensions)
                nv.setncatts({k: v.getncattr(k) for k in v.ncattrs() if k != "_FillValue"})
                nv[...] = v[...]
            for name in on_grid:
                v = ds.variables[name]
                data = np.ma.filled(np.ma.asarray(v[...]).astype(np.float64), np.nan)
                y = rg(data, skipna=True)
                y = y.reshape(data.shape[: data.ndim - len(sdims)] + dst.shape)
                fill = getattr(v, "_FillValue", None)
                fill = np.asarray(fill if fill is not None else netCDF4.default_fillvals["f8"]).astype(v.dtype)
                dims = v.dimensions[: v.ndim - len(sdims)] + gdims
                nv = out.createVariable(name, v.dtype, dims, fill_value=fill, zlib=True)
                nv.setncatts({k: v.getncattr(k) for k in v.ncattrs() if k not in SKIP_ATTRS})
                nv.regrid_method = f"{method} ({rg.backend}) from {src.name} {src.shape}"
                nv[...] = np.ma.masked_invalid(y)
                n_done += 1
            out.setncatts(regrid_provenance(inp.name, grid, method, rg.backend, weights, dropped,
                                            getattr(ds, "history", "")))
        except BaseException:
            target.abort()
            raise
        target.close()
    return n_done
