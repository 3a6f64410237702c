"""Regrid the lat/lon variables of a NetCDF file, keeping attributes and the variables that are not on the grid.

Out of core: each variable is read, regridded and written a slab of its leading (time) dimension at a time, so
peak memory is a few slabs plus the weights, whatever the file's length; the output is written under a temporary
name as it goes and renamed into place at the end (a failure leaves no partial file). Slabs are regridded with the
same per-field kernel as the whole array, so the result is bit for bit the same for any slab size.

Data as CF means it: packed variables (``scale_factor``/``add_offset``, as the Copernicus data store delivers ERA5)
are decoded before regridding and written as floats (or packed again with the input's packing, ``repack=True``);
fill values and ``valid_range`` become missing; integer fields are refused for conservative methods unless cast
(``cast_integers=True``); an output that is the input file (also through a link) is refused.
"""

from __future__ import annotations

import os
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


SLAB_BYTES = 8 * 2**20  # source values (as float64) read and regridded at once, per variable


def refuse_output_onto_input(inp: Path, out: Path) -> None:
    """An error when ``out`` is ``inp`` (same path, a link to it, or the same file under another name)."""
    same = Path(os.path.realpath(out)) == Path(os.path.realpath(inp))
    if not same and out.exists():
        try:
            same = os.path.samefile(out, inp)
        except OSError:
            same = False
    if same:
        raise RegridError(f"output {out} is the input file {inp} (resolved: {os.path.realpath(inp)}): regridding "
                          "would replace the input; choose another output name")


def _decoded_dtype(v) -> np.dtype:
    """The type of a variable's values once decoded: packed integers unpack to the type of their scale_factor/
    add_offset (float32 or float64), other values keep theirs."""
    packing = [getattr(v, a) for a in ("scale_factor", "add_offset") if hasattr(v, a)]
    if packing:
        return np.result_type(*[np.asarray(p).dtype for p in packing], np.float32)
    return np.dtype(v.dtype)


def regrid_file(inp: Path, grid, out_path: Path, method: str = "conservative", weights=None, backend="auto",
                cache_dir=None, variables=None, progress=None, slab_bytes: int = SLAB_BYTES,
                cast_integers: bool = False, repack: bool = False, compress: int = 0) -> int:
    """Regrid every numeric variable on ``inp``'s lat/lon grid to ``grid`` (a name, file or Grid) into
    ``out_path``, written atomically, slab by slab of the leading dimension; returns the number of variables
    regridded. ``progress(done, total)`` is called after every slab (slabs of all variables counted)."""
    from tamrl_coupler.regrid.regridder import Regridder

    inp, out_path = Path(inp), Path(out_path)
    refuse_output_onto_input(inp, out_path)
    src = Grid.from_file(inp, what="input file")
    dst = Grid.resolve(grid)
    rg = Regridder(src, dst, method=method, backend=backend, weights=weights, cache_dir=cache_dir)
    conservative = rg.method.startswith("conservative")
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
        for name in on_grid:
            v = ds.variables[name]
            if conservative and np.issubdtype(_decoded_dtype(v), np.integer) and not cast_integers:
                raise RegridError(f"{inp}: variable {name!r} is of integer type {v.dtype} without scale_factor/"
                                  f"add_offset: {rg.method} regridding gives fractional values; cast it explicitly "
                                  "(--cast-integers) or use nearest_s2d")
        plan = [(name, _slabs(ds.variables[name], len(sdims), slab_bytes)) for name in on_grid]
        total = sum(len(sl) for _, sl in plan)
        done = 0
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
            for name, slabs in plan:
                v = ds.variables[name]
                nv = _output_variable(out, v, gdims, len(sdims), dst, repack, compress, slabs)
                for var in (v, nv):  # each chunk is read or written once: netCDF's 64 MB cache per variable
                    var.set_var_chunk_cache(size=0)  # would only hold memory (a year: +60 MB, 2x CDO's peak)
                nv.setncatts({k: v.getncattr(k) for k in v.ncattrs() if k not in SKIP_ATTRS})
                nv.regrid_method = f"{rg.method} ({rg.backend}) from {src.name} {src.shape}"
                for sl in slabs:
                    data = _read_decoded(v, sl)
                    y = rg(data, skipna=True)
                    y = y.reshape(data.shape[: data.ndim - len(sdims)] + dst.shape)
                    if repack:
                        nv[sl] = _checked_repack(y, v, name, inp)
                    else:  # NaN -> the fill value in place, written as a plain array (no masked copy)
                        y[np.isnan(y)] = nv._FillValue
                        nv[sl] = y
                    done += 1
                    if progress is not None:
                        progress(done, total)
                n_done += 1
            out.setncatts(regrid_provenance(inp.name, grid, rg.method, rg.backend, weights, dropped,
                                            getattr(ds, "history", "")))
        except BaseException:
            target.abort()
            raise
        target.close()
    return n_done


def _slabs(v, n_grid_dims: int, slab_bytes: int) -> list[tuple]:
    """Index tuples that cover variable ``v`` a slab of its leading dimension at a time (one slab when the variable
    has only the grid's dimensions)."""
    if v.ndim == n_grid_dims:
        return [(Ellipsis,)]
    per_step = 8 * int(np.prod(v.shape[1:]))
    step = max(1, slab_bytes // max(per_step, 1))
    return [(slice(t, min(t + step, v.shape[0])), Ellipsis) for t in range(0, v.shape[0], step)]


def _read_decoded(v, sl: tuple) -> np.ndarray:
    """Values decoded as CF says (_FillValue, missing_value and valid_range in the stored type mark missing values,
    then scale_factor/add_offset apply), as floats with NaN where missing; no masked arrays (one copy less)."""
    v.set_auto_maskandscale(False)
    raw = np.asarray(v[sl])
    dtype = np.float32 if _decoded_dtype(v) == np.float32 else np.float64
    missing = None
    for attr in ("_FillValue", "missing_value"):
        for val in np.atleast_1d(getattr(v, attr, [])):
            hit = raw == np.asarray(val).astype(raw.dtype)
            missing = hit if missing is None else missing | hit
    lo, hi = getattr(v, "valid_min", None), getattr(v, "valid_max", None)
    if hasattr(v, "valid_range"):
        lo, hi = v.valid_range
    for bound, op in ((lo, np.less), (hi, np.greater)):
        if bound is not None:
            hit = op(raw, bound)
            missing = hit if missing is None else missing | hit
    if raw.dtype.kind == "f":
        nan = np.isnan(raw)
        missing = nan if missing is None else missing | nan
    x = raw.astype(dtype)
    if hasattr(v, "scale_factor"):
        x *= dtype(v.scale_factor)
    if hasattr(v, "add_offset"):
        x += dtype(v.add_offset)
    if missing is not None:
        x[missing] = np.nan
    return x


def _output_variable(out, v, gdims: tuple[str, ...], n_grid: int, dst: Grid, repack: bool, compress: int,
                     slabs: list[tuple]):
    """The output variable: floats (float32 when the decoded input is float32), or the input's packed type with its
    scale_factor/add_offset when ``repack``; chunked by the slab length along the leading dimension."""
    import netCDF4

    dims = v.dimensions[: v.ndim - n_grid] + gdims
    if repack and hasattr(v, "scale_factor"):
        dtype = v.dtype
        fill = getattr(v, "_FillValue", netCDF4.default_fillvals[np.dtype(dtype).str[1:]])
    else:
        dtype = np.float32 if _decoded_dtype(v) == np.float32 else np.float64
        fill = netCDF4.default_fillvals["f4" if dtype == np.float32 else "f8"]
    lead = []
    if v.ndim > n_grid:
        first = slabs[0][0]
        lead = [max(1, first.stop - first.start)] + [int(n) for n in v.shape[1: v.ndim - n_grid]]
    chunks = lead + list(dst.shape)
    nv = out.createVariable(v.name, dtype, dims, fill_value=fill, zlib=compress > 0,
                            complevel=max(1, compress) if compress else 4, chunksizes=chunks)
    if repack and hasattr(v, "scale_factor"):
        nv.scale_factor = v.scale_factor
        if hasattr(v, "add_offset"):
            nv.add_offset = v.add_offset
    return nv


def _checked_repack(y: np.ndarray, v, name: str, inp: Path) -> np.ndarray:
    """Regridded values for packing with the input's scale_factor/add_offset: an error if one falls outside what
    the packed type holds (netCDF4 packs on write)."""
    scale = float(getattr(v, "scale_factor", 1.0))
    offset = float(getattr(v, "add_offset", 0.0))
    info = np.iinfo(v.dtype)
    packed = (y[np.isfinite(y)] - offset) / scale
    if packed.size and (packed.min() < info.min or packed.max() > info.max):
        raise RegridError(f"{inp}: variable {name!r}: a regridded value does not fit the input's packing "
                          f"({v.dtype}, scale_factor {scale}, add_offset {offset}); write floats (no --repack)")
    finite = np.isfinite(y)
    return np.ma.masked_array(np.where(finite, y, offset), mask=~finite)
