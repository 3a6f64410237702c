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

from tamrl_coupler.atomicfile import (
    create_temporary,
    output_error,
    prepare_target,
    raise_as_output_error,
    remove_quietly,
)
from tamrl_coupler.constants import SECONDS_PER_DAY
from tamrl_coupler.errors import InputError
from tamrl_coupler.sealed import append_seal

_TIME_UNITS = {"second": 1, "seconds": 1, "s": 1, "sec": 1, "minute": 60, "minutes": 60, "min": 60, "hour": 3600,
               "hours": 3600, "h": 3600, "day": SECONDS_PER_DAY, "days": SECONDS_PER_DAY, "d": SECONDS_PER_DAY}


def open_netcdf(path: str | Path, what: str, error: type[Exception] = InputError) -> Any:
    """``netCDF4.Dataset(path)``; a missing, unreadable, truncated or non-NetCDF file (or a directory) raises
    ``error`` naming ``what`` and the path."""
    import netCDF4

    path = Path(path)
    if not path.exists():
        raise error(f"{what} {path} does not exist")
    if path.is_dir():
        raise error(f"{what} {path} is a directory, expected a NetCDF file")
    try:
        return netCDF4.Dataset(path)
    except (OSError, RuntimeError, ValueError) as exc:
        raise error(f"{what} {path} is not a readable NetCDF file (truncated, corrupt or another format): "
                    f"{exc}") from None


def read_array(var: Any, index: Any, where: str, error: type[Exception] = InputError) -> Any:
    """``var[index]``; a read the NetCDF library cannot complete (a truncated or damaged file: "NetCDF: HDF
    error") raises ``error`` naming ``where`` (the file and variable) instead of the library's RuntimeError."""
    try:
        return var[index]
    except (OSError, RuntimeError, ValueError, IndexError) as exc:
        raise error(f"{where}: cannot be read ({type(exc).__name__}: {exc}); the file is truncated or "
                    f"damaged") from None


class AtomicNetCDF:
    """A NetCDF file being written under a temporary name; :meth:`close` renames it into place, :meth:`abort`
    deletes it. ``ds`` is the open ``netCDF4.Dataset``. A failure of the file system (full disk, permission, a
    directory given as the file) is an OutputError naming the file, and leaves no temporary file behind."""

    def __init__(self, path: str | Path, what: str = "NetCDF file", seal: bool = False):
        import netCDF4

        self.what = what
        self.seal = seal  # append a whole-file SHA-256 seal (sealed.py) before renaming into place
        self.path = prepare_target(path, what)
        try:
            self.tmp = create_temporary(self.path)  # exclusively, an unpredictable name (atomicfile.py)
        except BaseException as exc:
            raise_as_output_error(exc, self.path, what)
        try:
            self.ds = netCDF4.Dataset(self.tmp, "w", format="NETCDF4")
        except BaseException as exc:
            remove_quietly(self.tmp)
            raise_as_output_error(exc, self.path, what)

    def close(self) -> Path:
        """Close and rename into place; on failure (the last buffers may not fit on the disk) the temporary file
        is removed and an OutputError raised."""
        try:
            self.ds.close()
            if self.seal:
                append_seal(self.tmp)
            os.replace(self.tmp, self.path)
        except BaseException as exc:
            converted = output_error(exc, self.path, self.what)  # before removing: a full disk is looked at
            remove_quietly(self.tmp)
            if converted is exc:
                raise
            raise converted from exc
        return self.path

    def abort(self) -> None:
        """Drop the file being written (a failure while closing it does not matter: it is removed)."""
        try:
            if self.ds.isopen():
                self.ds.close()
        except BaseException:  # the half-written file is removed below, whatever closing said
            pass
        finally:
            remove_quietly(self.tmp)


def write_atomic_netcdf(path: str | Path, fill: Callable[[Any], None], what: str = "NetCDF file",
                        seal: bool = False) -> Path:
    """Create ``path`` through ``fill(dataset)`` on a temporary file, then rename it into place; file-system
    failures are an OutputError naming ``path`` and leave no temporary file. ``seal``: end the file with a
    SHA-256 of every byte (sealed.py), for files whose every byte decides what a later run does (restarts)."""
    out = AtomicNetCDF(path, what, seal)
    try:
        fill(out.ds)
    except BaseException as exc:
        converted = output_error(exc, out.path, what)  # before removing: a full disk is looked at
        out.abort()
        if converted is exc:
            raise
        raise converted from exc
    return out.close()


_ORIGIN = re.compile(r"(?P<date>[+-]?\d{1,4}-\d{1,2}-\d{1,2})(?:[T ]+(?P<time>\d{1,2}:\d{1,2}(?::\d{1,2}(?:\.\d*)?)?))?"
                     r"\s*(?P<zone>Z|UTC|GMT|[+-]\d{1,2}(?::?\d{2})?)?")


def split_time_units(units: str, where: str) -> tuple[str, np.datetime64]:
    """``'hours since 2015-01-01 00:00 -6:00'`` -> ('hours', numpy.datetime64('2015-01-01T06:00:00')): the unit word
    and the origin in UTC. A time-zone offset is honoured in every form CF and UDUNITS write (``Z``, ``UTC``,
    ``-6``, ``-06``, ``-6:00``, ``+05:30``, ``+0530``): the CF conventions' own example has one, and ignoring it
    shifts the forcing by hours. Anything else after the date is an error naming the units."""
    word, sep, origin = str(units).strip().partition(" since ")
    if not sep:
        raise InputError(f"{where}: time units {units!r} not understood (expected '<unit> since <date>')")
    m = _ORIGIN.fullmatch(origin.strip())
    if m is None:
        raise InputError(f"{where}: time origin {origin.strip()!r} of units {units!r} is not a date such as "
                         f"'2015-01-01 00:00:00' (optionally with a time-zone offset such as '-6:00')")
    year, month, day = (int(x) for x in m["date"].lstrip("+-").split("-"))
    year = -year if m["date"].startswith("-") else year
    h, mi, sec = ((m["time"] or "0:0:0") + ":0").split(":")[:3]
    try:
        text = f"{year:04d}-{month:02d}-{day:02d}T{int(h):02d}:{int(mi):02d}:{int(float(sec)):02d}"
        base = np.datetime64(text, "s")
    except ValueError:
        raise InputError(f"{where}: time origin {origin.strip()!r} of units {units!r} is not a valid date") from None
    zone = m["zone"]
    offset = 0
    if zone and zone not in ("Z", "UTC", "GMT"):
        sign = -1 if zone[0] == "-" else 1
        digits = zone[1:].replace(":", "")
        zh, zm = (digits, "0") if len(digits) <= 2 else (digits[:-2], digits[-2:])
        if int(zh) > 14 or int(zm) >= 60:
            raise InputError(f"{where}: time-zone offset {zone!r} of units {units!r} is not an offset from UTC")
        offset = sign * (int(zh) * 3600 + int(zm) * 60)
    return word.strip(), base - np.timedelta64(offset, "s")


def utc_time_units(units: str, where: str) -> str:
    """The same units with the origin in UTC and no zone: what cftime reads right (it ignores ``-6:00``)."""
    word, origin = split_time_units(units, where)
    return f"{word} since {str(origin).replace('T', ' ')}"


def parse_time_units(units: str, where: str) -> tuple[int, np.datetime64]:
    """``'hours since 2015-01-01 00:00:00'`` -> (3600, numpy.datetime64('2015-01-01T00:00:00')); the origin in
    UTC (time-zone offsets honoured)."""
    word, origin = split_time_units(units, where)
    scale = _TIME_UNITS.get(word.lower())
    if scale is None:
        raise InputError(f"{where}: time units {units!r} not understood (expected '<seconds|hours|days> since "
                         f"<date>')")
    return scale, origin


GREGORIAN_CALENDARS = ("standard", "gregorian", "proleptic_gregorian")


def read_times(ds: Any, where: str, lower_bounds: bool = True) -> np.ndarray:
    """The ``time`` axis as datetime64[s]; with ``lower_bounds`` and a CF ``bounds`` variable, each record's lower
    bound (when it starts). ``where`` names the file in errors. Only the Gregorian calendars are read: the
    product's clock is proleptic Gregorian, and a 360_day or noleap date has no place on it (putting one there
    would shift every date after it); such files are refused, naming the calendar."""
    return read_time_axis(ds, where)[0 if lower_bounds else 2]


NOLEAP_CALENDARS = ("noleap", "365_day")  # every date is a Gregorian date; only Feb 29 is missing


def read_time_axis(ds: Any, where: str, name: str = "time", calendars: tuple[str, ...] = GREGORIAN_CALENDARS
                   ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    """(record starts, record ends or None, time values) as datetime64[s]: starts and ends from a CF ``bounds``
    variable when there is one (starts are the time values otherwise). ``name``: the time variable (ERA5 from the
    new CDS calls it ``valid_time``). ``calendars``: those accepted; a no-leap calendar (when accepted) is read as
    the Gregorian dates it names, and without bounds each record ends where the next starts *in its own calendar*
    (so the last record of Feb 28 reaches to Mar 1 across a Gregorian Feb 29: the caller decides about that)."""
    import cftime

    if name not in ds.variables:
        raise InputError(f"{where}: no '{name}' variable")
    tv = ds.variables[name]
    units = getattr(tv, "units", None)
    if units is None:
        raise InputError(f"{where}: variable '{name}' has no units (expected e.g. 'seconds since ...')")
    calendar = str(getattr(tv, "calendar", "standard")).strip().lower()
    if calendar not in calendars:
        hint = ("; a no-leap calendar can be read with forcing.leap_day: hold" if calendar in NOLEAP_CALENDARS
                else "")
        raise InputError(f"{where}: time calendar {calendar!r} is not supported; the coupling clock is proleptic "
                         f"Gregorian (expected one of {', '.join(calendars)}): convert the file's calendar rather "
                         f"than have its dates shifted{hint}")

    utc_units = utc_time_units(units, f"{where}, variable 'time'")

    def dates(values: np.ndarray, what: str) -> np.ndarray:
        values = np.asarray(values, dtype=np.float64)
        if not np.isfinite(values).all():
            raise InputError(f"{where}: {what} has missing or non-finite values")
        try:
            out = cftime.num2date(values.ravel(), utc_units, calendar=calendar, only_use_cftime_datetimes=True)
            return np.array([np.datetime64(d.isoformat(), "s") for d in np.atleast_1d(out)],
                            dtype="datetime64[s]").reshape(np.shape(values))
        except (ValueError, OverflowError) as exc:
            raise InputError(f"{where}: {what} cannot be read as dates with units {units!r} ({exc})") from None

    raw = np.asarray(read_array(tv, slice(None), f"{where}, variable '{name}'"), dtype=np.float64)
    values = dates(raw, name)
    bname = getattr(tv, "bounds", None)
    if bname and bname in ds.variables:
        b = np.asarray(read_array(ds.variables[bname], slice(None), f"{where}, variable '{bname}'"))
        if b.ndim != 2 or b.shape != (values.size, 2):
            raise InputError(f"{where}: time bounds '{bname}' have shape {b.shape}, expected ({values.size}, 2)")
        bd = dates(b, f"time bounds '{bname}'")
        if (bd[:, 1] <= bd[:, 0]).any():
            i = int(np.flatnonzero(bd[:, 1] <= bd[:, 0])[0])
            raise InputError(f"{where}: time bounds of record {i} end ({bd[i, 1]}) before they start ({bd[i, 0]})")
        outside = (values < bd[:, 0]) | (values > bd[:, 1])
        if outside.any():
            i = int(np.flatnonzero(outside)[0])
            raise InputError(f"{where}: time of record {i} ({values[i]}) lies outside its bounds '{bname}' "
                             f"[{bd[i, 0]}, {bd[i, 1]}] ({int(outside.sum())} records like it): the time axis and its "
                             f"bounds disagree (shifted bounds, or a time axis in other units); which one is right "
                             f"cannot be told, so the file is refused")
        return bd[:, 0], bd[:, 1], values
    if calendar not in GREGORIAN_CALENDARS and raw.size > 1 and raw.ndim == 1:
        step = np.diff(raw)
        if (step == step[0]).all():  # each record ends where the next starts, counted in the file's calendar
            return values, dates(np.append(raw[1:], raw[-1] + step[0]), f"{name} + one record"), values
    return values, None, values
