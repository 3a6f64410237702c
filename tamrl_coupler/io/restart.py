"""Restart files: NetCDF, written atomically (a temporary file in the same directory, then renamed).

A crash while writing leaves the previous restart intact; a reader never sees half a file. Arrays are stored in
the component's global cell order, so a run may restart on a different number of ranks.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tamrl_coupler.errors import InputError
from tamrl_coupler.ncfiles import open_netcdf, write_atomic_netcdf

# 2: the period estimate between model evaluations (model.update_interval); 3: driver state named by driver
FORMAT_VERSION = 3
READABLE_VERSIONS = (1, 2, 3)


def write_restart(path: str | Path, scalars: dict[str, float], arrays: dict[str, tuple[tuple[str, ...], np.ndarray]],
                  attrs: dict[str, str]) -> Path:
    """``arrays``: name -> (dimension names, values); dimension sizes are taken from the arrays."""

    def fill(ds):
        ds.setncattr("title", "tamrl-coupler restart")
        ds.setncattr("restart_format_version", FORMAT_VERSION)
        for k, v in attrs.items():
            ds.setncattr(k, v)
        dims: dict[str, int] = {}
        for name, (dnames, a) in arrays.items():
            if len(dnames) != np.ndim(a):
                raise ValueError(f"restart array {name}: {len(dnames)} dimension names for a {np.ndim(a)}-D array")
            for d, n in zip(dnames, np.shape(a), strict=True):
                if dims.setdefault(d, n) != n:
                    raise ValueError(f"restart array {name}: dimension {d} is {n}, elsewhere {dims[d]}")
        for d, n in dims.items():
            ds.createDimension(d, n)
        for name, value in scalars.items():
            v = ds.createVariable(f"scalar_{name}", "f8", ())
            v[...] = float(value)
        for name, (dnames, a) in arrays.items():
            a = np.asarray(a)
            v = ds.createVariable(name, a.dtype, dnames, zlib=True, complevel=1)
            v[...] = a

    return write_atomic_netcdf(path, fill)


def read_restart(path: str | Path) -> tuple[dict[str, float], dict[str, np.ndarray], dict[str, str]]:
    """(scalars, arrays, global attributes) of a restart file this build can read; errors name the file."""
    path = Path(path)
    with open_netcdf(path, "restart file") as ds:
        ds.set_auto_mask(False)
        if getattr(ds, "title", "") != "tamrl-coupler restart":
            raise InputError(f"{path} is not a tamrl-coupler restart file (title attribute missing)")
        version = int(getattr(ds, "restart_format_version", -1))
        if version not in READABLE_VERSIONS:
            raise InputError(f"restart file {path} has format version {version}; this build reads "
                             f"{' and '.join(map(str, READABLE_VERSIONS))}")
        attrs = {k: ds.getncattr(k) for k in ds.ncattrs()}
        scalars, arrays = {}, {}
        for name, var in ds.variables.items():
            if name.startswith("scalar_"):
                scalars[name[len("scalar_"):]] = float(var[...])
            else:
                arrays[name] = np.asarray(var[...])
    return scalars, arrays, attrs
