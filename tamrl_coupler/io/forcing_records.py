"""A forcing field's records: one variable of one file decoded a record at a time (packing, fill values, ERA5's
``expver`` split), and one import's records joined across its files with the interval each holds over (to the next
record, its time bounds, or the hour or six hours an amount or mean was taken over), a no-leap file's record before a
skipped Feb 29 held over it. The reader (``io/forcing.py``) finds the variables; this is what it reads them with."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tamrl_coupler.errors import InputError
from tamrl_coupler.io.gribfile import GribVariable
from tamrl_coupler.ncfiles import read_array
from tamrl_coupler.physics.units import ScalarConversion
from tamrl_coupler.vocabulary import Accumulation


def record_ends(starts: np.ndarray, ends: np.ndarray | None, where: str) -> np.ndarray:
    """When each record stops being valid: its upper time bound; without bounds, the next record's time, the last
    record's from the records' regular spacing (or the next calendar month for monthly records). Records must be
    contiguous: a gap (a bound that is not the next record's start, or an irregular spacing) is an error, never
    bridged by holding a record over it."""
    n = starts.size
    if ends is not None:
        gap = np.flatnonzero(starts[1:] != ends[:-1])
        if gap.size:
            i = int(gap[0])
            raise InputError(f"{where}: forcing record {i + 1} starts at {starts[i + 1]} but record {i} ends at "
                             f"{ends[i]}: a gap or an overlap in the forcing (records must be contiguous)")
        return ends
    if n == 1:
        raise InputError(f"{where}: a single forcing record without time bounds: how long it is valid is unknown "
                         f"(add a time bounds variable)")
    d = np.diff(starts.astype(np.int64))
    if (d == d[0]).all():
        return np.append(starts[1:], starts[-1] + np.timedelta64(int(d[0]), "s"))
    months = starts.astype("datetime64[M]")
    offsets = starts - months.astype("datetime64[s]")
    if (np.diff(months.astype(np.int64)) == 1).all() and (offsets == offsets[0]).all():  # monthly records
        return np.append(starts[1:], (months[-1] + np.timedelta64(1, "M")).astype("datetime64[s]") + offsets[0])
    i = int(np.flatnonzero(d != np.median(d))[0])
    raise InputError(f"{where}: forcing records are not evenly spaced: record {i + 1} at {starts[i + 1]} follows "
                     f"{starts[i]} after {int(d[i])} s while most are {int(np.median(d))} s apart (a gap, or add time "
                     f"bounds saying how long each record is valid)")


MAX_RECORD_DAYS = 31  # longer records are calendar years or a time axis in the wrong units


def check_record_lengths(starts: np.ndarray, ends: np.ndarray, where: str) -> None:
    """Records last at most a month, or exactly a calendar year each: a record held for 150 or 450 days is a time
    axis whose units are wrong (values in seconds labelled hours), which would hold one record over a season."""
    days = (ends - starts).astype("timedelta64[s]").astype(np.int64) / 86400.0
    long = days > MAX_RECORD_DAYS + 1e-9
    if not long.any():
        return
    years = starts.astype("datetime64[Y]")
    yearly = (ends == (years + np.timedelta64(1, "Y")).astype("datetime64[s]") + (starts - years.astype(
        "datetime64[s]")))
    if (~long | yearly).all():
        return
    i = int(np.flatnonzero(long & ~yearly)[0])
    raise InputError(f"{where}: forcing record {i} ({starts[i]}) is held for {days[i]:g} days until {ends[i]}: "
                     f"records longer than a month (other than calendar years) mean the time units are wrong, e.g. "
                     f"values in seconds labelled 'hours since' (check the time variable's units)")


@dataclass
class SourceVariable:
    """One variable of one file, as one import: its records' intervals and how to decode and convert a record."""

    path: Path
    name: str
    handle: Any  # netCDF4.Variable or GribVariable
    stamps: np.ndarray  # datetime64[s] per record: its time (or lower time bound)
    position: str  # how a record's interval lies at its stamp: bounds, held, ending, starting, centred
    bounds_end: np.ndarray | None  # the records' ends read with the time axis (CF bounds, a no-leap calendar's)
    noleap: bool
    conv: ScalarConversion  # decoded file units (per second, for an amount) -> the import's unit
    amount: Accumulation | None  # None: a state or a rate
    transpose: bool
    expver: bool  # ERA5 from the CDS mixing final and preliminary data: a second dimension, one of them filled
    seconds: np.ndarray | None = None  # per record, the length of the interval an amount is over (set by _Field)

    def decode(self, local: int) -> tuple[np.ndarray, np.ndarray | None]:
        """The record's values (float64, file units, packing applied, flat in the grid's order) and where they are
        fill values (None: nowhere)."""
        where = f"forcing file {self.path}, variable '{self.name}', record {local}"
        if isinstance(self.handle, GribVariable):
            try:
                raw = self.handle.read(local)
            except Exception as exc:  # ecCodes decoding errors of a damaged message
                raise InputError(f"{where}: cannot be read ({type(exc).__name__}: {exc})") from None
            fill = ~np.isfinite(raw)
            return (raw.T if self.transpose else raw).ravel(), ((fill.T if self.transpose else fill).ravel()
                                                                if fill.any() else None)
        var = self.handle
        raw = np.asarray(read_array(var, local, where), dtype=np.float64)
        fills = [getattr(var, a) for a in ("_FillValue", "missing_value") if hasattr(var, a)]
        is_fill = np.isin(raw, np.asarray(fills, dtype=np.float64).ravel()) if fills else None
        packed = (float(getattr(var, "scale_factor", 1.0)), float(getattr(var, "add_offset", 0.0)))
        if packed != (1.0, 0.0):
            raw = raw * packed[0] + packed[1]
        if self.expver:  # (expver, ...): the first version that has the value
            ok = ~is_fill if is_fill is not None else np.ones(raw.shape, bool)
            pick = np.argmax(ok, axis=0)
            raw = np.take_along_axis(raw, pick[None], axis=0)[0]
            is_fill = ~np.take_along_axis(ok, pick[None], axis=0)[0]
        if self.transpose:
            raw, is_fill = raw.T, (is_fill.T if is_fill is not None else None)
        return raw.ravel(), (is_fill.ravel() if is_fill is not None and is_fill.any() else None)

    @property
    def quantum(self) -> float:
        """The packing's resolution in file units (0 for unpacked floats): what rounding can make of an amount."""
        return 0.0 if isinstance(self.handle, GribVariable) else abs(float(getattr(self.handle, "scale_factor", 0.0)))


def leap_days_in(starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """How many Gregorian Feb 29s (whole days) lie inside each interval [start, end)."""
    out = np.zeros(starts.size)
    for i in np.flatnonzero((ends - starts) > np.timedelta64(86400, "s")):
        days = np.arange(starts[i].astype("datetime64[D]"), ends[i].astype("datetime64[D]"))
        out[i] = sum(str(d)[5:] == "02-29" for d in days)
    return out


def record_spacing(stamps: np.ndarray, noleap: bool, where: str) -> np.timedelta64:
    """The regular spacing of an amount's records (a no-leap file may skip a Feb 29 between two of them)."""
    if stamps.size < 2:
        raise InputError(f"{where}: one record without time bounds: the interval it holds over is unknown")
    d = np.diff(stamps.astype(np.int64))
    values, counts = np.unique(d, return_counts=True)
    step = int(values[np.argmax(counts)])
    odd = d != step
    if noleap:
        odd &= d != step + 86400
    if odd.any():
        raise InputError(f"{where}: amounts or means at uneven times ({int(d.min())} to {int(d.max())} s apart) "
                         "without time bounds: the interval each is over is unknown")
    return np.timedelta64(step, "s")


def regular_intervals(stamps: np.ndarray, position: str, noleap: bool, where: str) -> tuple[np.ndarray, np.ndarray]:
    """Intervals of records at regularly spaced ``stamps``: the spacing ``ending`` at the stamp, ``starting`` at it,
    or ``centred`` on it; in a no-leap file the record before a skipped Feb 29 is held over it."""
    step = record_spacing(stamps, noleap, where)
    lead = {"ending": step, "starting": np.timedelta64(0, "s"), "centred": step // 2}[position]
    starts, ends = stamps - lead, stamps - lead + step
    if noleap:
        gap = np.flatnonzero(starts[1:] != ends[:-1])
        held = gap[(starts[gap + 1] - ends[gap]) == np.timedelta64(86400, "s")]
        ends[held] = starts[held + 1]
    record_ends(starts, ends, where)
    return starts, ends


class FieldRecords:
    """One import across the files that hold it: records in time order (global index over all its files)."""

    def __init__(self, name: str, variables: list[SourceVariable], where: str):
        self.name = name
        self.vars = variables
        self.first = np.cumsum([0] + [v.stamps.size for v in variables])
        stamps = np.concatenate([v.stamps for v in variables])
        positions = {v.position for v in variables}
        if len(positions) > 1:
            raise InputError(f"{where}: its files differ in how records lie at their stamps ({sorted(positions)}: "
                             "time bounds in some files only?)")
        position, noleap = positions.pop(), any(v.noleap for v in variables)
        if position in ("bounds", "held") and all(v.bounds_end is not None for v in variables):
            self.starts, self.ends = stamps, np.concatenate([v.bounds_end for v in variables])
        elif position == "held":  # each record to the next one, across files
            self.starts, self.ends = stamps, record_ends(stamps, None, where)
        else:
            self.starts, self.ends = regular_intervals(stamps, position, noleap, where)
        check_record_lengths(self.starts, self.ends, where)
        step = None if position in ("bounds", "held") else record_spacing(stamps, noleap, where)
        for v, lo, hi in zip(variables, self.first[:-1], self.first[1:], strict=True):
            if v.amount is None:
                continue
            if step is not None:
                v.seconds = np.full(hi - lo, float(step.astype(np.int64)))
            else:  # over its bounds, less a Gregorian Feb 29 a no-leap file's record was held over
                v.seconds = (self.ends[lo:hi] - self.starts[lo:hi]).astype(np.int64).astype(np.float64)
                if v.noleap:
                    v.seconds -= 86400.0 * leap_days_in(self.starts[lo:hi], self.ends[lo:hi])
        self._cache: tuple[int, np.ndarray, np.ndarray | None] | None = None

    def locate(self, record: int) -> tuple[SourceVariable, int]:
        k = int(np.searchsorted(self.first, record, side="right")) - 1
        return self.vars[k], record - int(self.first[k])

    def decoded(self, record: int) -> tuple[np.ndarray, np.ndarray | None]:
        if self._cache is not None and self._cache[0] == record:
            return self._cache[1], self._cache[2]
        var, local = self.locate(record)
        values, fill = var.decode(local)
        self._cache = (record, values, fill)
        return values, fill
