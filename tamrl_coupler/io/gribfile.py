"""GRIB forcing (ERA5 and ERA5-Land as the CDS delivers them) through cfgrib and ecCodes, as the forcing reader
needs it: variable names, units, the grid dimensions, each record's valid time and one record at a time.

cfgrib (``pip install 'tamrl-coupler[grib]'``: cfgrib and eccodes, whose binary wheels carry the ecCodes library;
no system package is needed) opens a file lazily: a record is decoded when it is read, so a year of hourly ERA5 is
never in memory. A file mixing instantaneous and accumulated fields is opened as several datasets (one per GRIB
step type); forecast-style axes (``time`` x ``step``, as ERA5's accumulations come from forecasts) are flattened to
the records' valid times, in order.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tamrl_coupler.errors import InputError

GRIB_SUFFIXES = (".grib", ".grb", ".grib1", ".grib2", ".grb1", ".grb2")


def is_grib(path: str | Path) -> bool:
    """A GRIB file, by its suffix or its first four bytes."""
    path = Path(path)
    if path.suffix.lower() in GRIB_SUFFIXES:
        return True
    try:
        with open(path, "rb") as fh:
            return fh.read(4) == b"GRIB"
    except OSError:
        return False


@dataclass
class GribVariable:
    """One variable of a GRIB file: records in valid-time order, each an index into its dataset's non-grid dims."""

    name: str
    data: Any  # xarray.DataArray (lazy)
    lead: tuple[str, ...]  # its non-grid dimensions (time, step ...), flattened into records
    index: list[tuple[int, ...]]  # record -> position along ``lead``
    valid: np.ndarray  # datetime64[s] per record
    dims: tuple[str, ...]  # grid dimensions

    @property
    def units(self) -> str | None:
        return self.data.attrs.get("units", self.data.attrs.get("GRIB_units"))

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.data.sizes[d] for d in self.dims)

    def read(self, record: int) -> np.ndarray:
        sel = dict(zip(self.lead, self.index[record], strict=True))
        return np.asarray(self.data.isel(sel).values, dtype=np.float64)


class GribFile:
    """A GRIB file's variables (see the module docstring); ``where`` names it in errors."""

    def __init__(self, path: Path):
        self.path = Path(path)
        try:
            import cfgrib
        except ImportError as exc:
            raise InputError(f"forcing file {path} is GRIB: reading GRIB needs cfgrib and ecCodes (pip install "
                             f"'tamrl-coupler[grib]', or convert the file to NetCDF) ({exc})") from None
        try:
            self._datasets = cfgrib.open_datasets(str(path), backend_kwargs={"indexpath": ""})
        except Exception as exc:  # cfgrib/ecCodes raise many kinds; each means the same: not a readable GRIB
            raise InputError(f"forcing file {path}: not a readable GRIB file ({type(exc).__name__}: {exc})") from None
        self.variables: dict[str, GribVariable] = {}
        for ds in self._datasets:
            for name, da in ds.data_vars.items():
                self.variables[str(name)] = self._variable(str(name), da)

    def _variable(self, name: str, da: Any) -> GribVariable:
        grid = tuple(d for d in da.dims if d in ("latitude", "longitude", "values", "x", "y"))
        lead = tuple(d for d in da.dims if d not in grid)
        if "valid_time" not in da.coords:
            raise InputError(f"forcing file {self.path}: GRIB variable '{name}' has no valid time")
        valid = np.asarray(da.coords["valid_time"].values).astype("datetime64[s]")
        vdims = da.coords["valid_time"].dims
        shape = tuple(da.sizes[d] for d in lead)
        index = list(np.ndindex(*shape)) if shape else [()]
        times = []
        for ix in index:
            sel = tuple(ix[lead.index(d)] for d in vdims)
            times.append(valid[sel] if vdims else valid.item() if valid.ndim else valid)
        t = np.asarray(times, dtype="datetime64[s]")
        keep = ~np.isnat(t)
        order = np.argsort(t[keep], kind="stable")
        index = [index[i] for i in np.flatnonzero(keep)[order]]
        t = t[keep][order]
        if t.size > 1 and (np.diff(t.astype(np.int64)) <= 0).any():
            i = int(np.flatnonzero(np.diff(t.astype(np.int64)) <= 0)[0])
            raise InputError(f"forcing file {self.path}: GRIB variable '{name}' has two records valid at {t[i + 1]} "
                             "(several ensemble members or experiment versions: select one)")
        return GribVariable(name, da, lead, index, t, grid)

    def close(self) -> None:
        for ds in self._datasets:
            ds.close()
