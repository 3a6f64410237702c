"""NetCDF at its lowest level, for every file the product reads or writes: opening with an error that says which
file it was and what it was meant to be, writing atomically, and reading a time axis.

Why atomic: a file is written under a temporary name in its own directory and renamed into place when complete,
so a crash never leaves half a file under the final name and never damages the file written before (restarts,
flux files, priors, regridded files, converted forcing).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from tamrl_coupler.constants import SECONDS_PER_DAY
from tamrl_coupler.errors import InputError

_TIME_UNITS = {"second": 1, "seconds": 1, "s": 1, "sec": 1, "minute": 60, "minutes": 60, "min": 60, "hour": 3600,
               "hours": 3600, "h": 3600, "day": SECONDS_PER_DAY, "days": SECONDS_PER_DAY, "d": SECONDS_PER_DAY}


def open_netcdf(path: str | Path, what: str, error: type[Exception] = InputError) -> Any:
    """``netCDF4.Dataset(path)``; a missing or unreadable file raises ``error`` naming ``what`` and the path."""
    import netCDF4

    path = Path(path)
    if not path.exists():
        raise error(f"{what} {path} does not exist")
    try:
        return netCDF4.Dataset(path)
    except OSError as exc:
        raise error(f"{what} {path} is not a readable NetCDF file: {exc}") from None


class AtomicNetCDF:
    """A NetCDF file being written under a temporary name; :meth:`close` renames it into place, :meth:`abort`
    deletes it. ``ds`` is the open ``netCDF4.Dataset``."""

    def __init__(self, path: str | Path):
        import netCDF4

        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        self.ds = netCDF4.Dataset(self.tmp, "w", format="NETCDF4")

    def close(self) -> Path:
        self.ds.close()
        os.replace(self.tmp, self.path)
        return self.path

    def abort(self) -> None:
        try:
            if self.ds.isopen():
                self.ds.close()
        finally:
            if self.tmp.exists():
                self.tmp.unlink()


def write_atomic_netcdf(path: str | Path, fill: Callable[[Any], None]) -> Path:
    """Create ``path`` through ``fill(dataset)`` on a temporary file, then rename it into place."""
    out = AtomicNetCDF(path)
    try:
        fill(out.ds)
        return out.close()
    except BaseException:
        out.abort()
        raise


def parse_time_units(units: str, where: str) -> tuple[int, np.datetime64]:
    """``'hours since 2015-01-01 00:00:00'`` -> (3600, numpy.datetime64('2015-01-01T00:00:00'))."""
    word, sep, origin = str(units).partition(" since ")
    scale = _TIME_UNITS.get(word.strip().lower())
    if not sep or scale is None:
        raise InputError(f"{where}: time units {units!r} not understood (expected '<seconds|hours|days> since "
                         f"<date>')")
    text = origin.strip().replace(" ", "T", 1)
    text = re.sub(r"(Z|UTC|[+-]00:?00)$", "", text.split(" ")[0]).rstrip("T")
    try:
        return scale, np.datetime64(text, "s")
    except ValueError:
        raise InputError(f"{where}: time origin {origin.strip()!r} is not a date") from None


def read_times(ds: Any, where: str, lower_bounds: bool = True) -> np.ndarray:
    """The ``time`` axis as datetime64[s] (proleptic Gregorian or the file's calendar, via cftime); with
    ``lower_bounds`` and a CF ``bounds`` variable, each record's lower bound (when it starts). ``where`` names the
    file in errors."""
    import cftime

    if "time" not in ds.variables:
        raise InputError(f"{where}: no 'time' variable")
    tv = ds.variables["time"]
    units = getattr(tv, "units", None)
    if units is None:
        raise InputError(f"{where}: variable 'time' has no units (expected e.g. 'seconds since ...')")
    calendar = getattr(tv, "calendar", "standard")
    values = np.asarray(tv[:], dtype=np.float64)
    bname = getattr(tv, "bounds", None)
    if lower_bounds and bname and bname in ds.variables:
        values = np.asarray(ds.variables[bname][:], dtype=np.float64)[:, 0]
    dates = cftime.num2date(values, units.strip(), calendar=calendar, only_use_cftime_datetimes=True)
    return np.array([np.datetime64(d.isoformat(), "s") for d in np.atleast_1d(dates)], dtype="datetime64[s]")
