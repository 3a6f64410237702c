"""Regridding xarray objects (the xESMF convention): ``regridder(ds)`` returns xarray on the target grid.

Every field that has the source grid's dimensions is regridded over them, every other dimension is kept (in its
order, the grid's dimensions last); variables without those dimensions are kept as they are, and variables with only
some of them (the source's own bounds, cell areas) are left out. The result carries the target grid's coordinates
with their attributes (and, for a Dataset, their bounds), the fields' attributes and the Dataset's global attributes,
less those that described the source grid. A dask-backed field stays lazy: ``xarray.apply_ufunc`` with
``dask="parallelized"`` maps the regridding over its chunks of the other dimensions (the grid's dimensions are
brought into one chunk first).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tamrl_coupler.regrid.gridattrs import drop_grid_attributes
from tamrl_coupler.regrid.xarray_grid import XarrayLayout

FIELD_ATTRS_DROPPED = ("coordinates", "cell_measures", "grid_mapping", "bounds")  # named what the source grid had


def _regrid_array(apply: Any, da: Any, src: XarrayLayout, dst: XarrayLayout, dst_shape: tuple[int, ...],
                  skipna: bool, note: str, keep_attrs: bool = True, output_chunks: Any = None) -> Any:
    import xarray as xr

    other = [d for d in da.dims if d not in src.dims]
    da = da.transpose(*other, *src.dims)
    if da.chunks is not None:
        da = da.chunk({d: -1 for d in src.dims})
    out_dtype = np.float32 if da.dtype == np.float32 else np.float64

    def kernel(x: np.ndarray) -> np.ndarray:
        y = apply(np.asarray(x), skipna=skipna)
        return y.reshape(x.shape[: x.ndim - len(src.dims)] + dst_shape)

    renamed = {d: d + "__src" for d in src.dims if d in dst.dims or d in other}
    da = da.rename(renamed) if renamed else da
    src_dims = [renamed.get(d, d) for d in src.dims]
    out = xr.apply_ufunc(kernel, da, input_core_dims=[src_dims], output_core_dims=[list(dst.dims)],
                         exclude_dims=set(src_dims), dask="parallelized", output_dtypes=[out_dtype],
                         dask_gufunc_kwargs={"output_sizes": dict(zip(dst.dims, dst_shape, strict=True))},
                         keep_attrs=True)
    if not keep_attrs:
        out.attrs = {}
    for k in FIELD_ATTRS_DROPPED:
        out.attrs.pop(k, None)
    out.attrs["regrid_method"] = note
    out = out.assign_coords({n: v for n, v in dst.coords.items()})
    if output_chunks is not None and out.chunks is not None:
        chunks = output_chunks if isinstance(output_chunks, dict) else dict(zip(dst.dims, output_chunks, strict=True))
        out = out.chunk({d: c for d, c in chunks.items() if d in dst.dims})
    return out


def regrid_xarray(apply: Any, obj: Any, src: XarrayLayout, dst: XarrayLayout, dst_shape: tuple[int, ...],
                  skipna: bool, note: str, keep_attrs: bool = True, output_chunks: Any = None) -> Any:
    """``obj`` (Dataset or DataArray on the ``src`` layout) regridded by ``apply`` (numpy ``(..., *src) ->
    (..., n_dst or *dst)``) onto the ``dst`` layout; ``note`` goes into each field's ``regrid_method``."""
    import xarray as xr

    if isinstance(obj, xr.DataArray):
        return _regrid_array(apply, obj, src, dst, dst_shape, skipna, note, keep_attrs, output_chunks)
    grid_dims = set(src.dims)
    out = {}
    for name, da in obj.data_vars.items():
        if name in src.vertices:
            continue
        on_grid = grid_dims <= set(da.dims)
        describes_grid = da.attrs.get("standard_name") == "cell_area" or name in src.bounds
        if on_grid and not describes_grid and np.issubdtype(da.dtype, np.number):
            out[name] = _regrid_array(apply, da, src, dst, dst_shape, skipna, note, keep_attrs, output_chunks)
        elif not set(da.dims) & grid_dims:
            out[name] = da
    kept_coords = {n: c for n, c in obj.coords.items()
                   if not set(c.dims) & grid_dims and n not in dst.coords and n not in src.vertices}
    ds = xr.Dataset(out, coords=kept_coords)
    ds = ds.assign_coords({n: v for n, v in dst.coords.items()})
    for n, v in dst.bounds.items():
        ds[n] = v
    ds.attrs, _ = drop_grid_attributes(dict(obj.attrs)) if keep_attrs else ({}, [])
    ds.attrs["regrid_method"] = note
    return ds
