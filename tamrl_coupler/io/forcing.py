"""CF NetCDF forcing time series for the offline driver: a list or glob of files, variable names mapped per config.

ERA5, GSWP3, CRU-JRA or GLDAS files name their variables differently (``t2m``, ``Tair``, ``Tair_f_inst`` ...);
``forcing.variables`` maps the product's short names onto the file's names, and a variable whose
``standard_name`` matches is found without a mapping. Units are converted to the component's import units
(degC -> K, hPa -> Pa, mm/day -> kg m-2 s-1 ...). Each record is valid from its time (or lower time bound) to the
next record's, so coarser forcing is held over several coupling steps.
"""

from __future__ import annotations

import glob as globmod
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tamrl_coupler import vocabulary
from tamrl_coupler.errors import InputError
from tamrl_coupler.ncfiles import open_netcdf, read_array, read_time_axis
from tamrl_coupler.physics.units import ScalarConversion, import_conversion
from tamrl_coupler.settings.paths import resolve_path
from tamrl_coupler.vocabulary import Role


def expand_files(patterns: list[str], base: Path | None = None) -> list[Path]:
    """Paths and globs (relative to ``base``) -> existing files, in the order given, globs sorted."""
    files: list[Path] = []
    for pat in patterns:
        p = resolve_path(pat, base)
        if any(ch in str(p) for ch in "*?["):
            hits = sorted(Path(h) for h in globmod.glob(str(p)))
            if not hits:
                raise InputError(f"forcing.files: pattern {pat!r} matches no file")
            files.extend(hits)
        else:
            if not p.exists():
                raise InputError(f"forcing.files: file {p} does not exist")
            files.append(p)
    return files


@dataclass
class _Source:
    path: Path
    var: str
    record: int
    conv: ScalarConversion
    transpose: bool  # the file's spatial dimensions are the host grid's reversed, e.g. (time, lon, lat)


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


class ForcingReader:
    """Reads records of the configured files for one rank's host cells (flat global indices).

    ``dims``: the host grid's dimension names of one record (``(lat, lon)`` or ``(site,)``); every variable must
    have them after ``time``, matched by name (a ``(time, lon, lat)`` variable is transposed when read)."""

    def __init__(self, files: list[Path], variables: dict[str, str], fields: list[str],
                 grid_size: int | None = None, dims: tuple[str, ...] | None = None):
        import netCDF4

        if not files:
            raise InputError("forcing: no files given")
        unknown = [k for k in variables if k not in vocabulary.accepted_names(Role.IMPORT)]
        if unknown:
            raise InputError(f"forcing.variables: {unknown[0]!r} is not an import field; expected some of "
                             f"{sorted(vocabulary.IMPORTS)}")
        variables = {vocabulary.canonical_name(Role.IMPORT, k): v for k, v in variables.items()}
        self.files = files
        self.fields = list(fields)
        self.sources: dict[str, list[_Source]] = {f: [] for f in self.fields}
        self.grid_size = grid_size
        self.dims = tuple(dims) if dims else None
        self._handles: dict[Path, netCDF4.Dataset] = {}
        starts, ends = [], []
        try:
            for path in files:
                s, e = self._open(path, variables)
                starts.append(s)
                ends.append(e)
        except BaseException:
            self.close()
            raise
        self.times = np.concatenate(starts)
        d = np.diff(self.times.astype(np.int64))
        if d.size and (d <= 0).any():
            i = int(np.flatnonzero(d <= 0)[0])
            self.close()
            raise InputError(f"forcing time is not strictly increasing: record {i + 1} at {self.times[i + 1]} follows "
                             f"{self.times[i]} (files {[str(f) for f in files]})")
        where = f"forcing files {[str(f) for f in files]}"
        try:
            self.ends = record_ends(self.times, np.concatenate(ends) if all(e is not None for e in ends) else None,
                                    where)
            check_record_lengths(self.times, self.ends, where)
        except BaseException:
            self.close()
            raise

    def _open(self, path: Path, variables: dict[str, str]) -> tuple[np.ndarray, np.ndarray | None]:
        ds = open_netcdf(path, "forcing file")
        self._handles[path] = ds
        ds.set_auto_maskandscale(False)
        starts, ends, _ = read_time_axis(ds, f"forcing file {path}")
        by_std = {getattr(v, "standard_name", None): n for n, v in ds.variables.items()}
        for f in self.fields:
            name = variables.get(f)
            std = vocabulary.IMPORTS[f].standard_name
            if name is None:
                name = f if f in ds.variables else by_std.get(std) if std else None
                name = name or next((a for a in vocabulary.IMPORTS[f].aliases if a in ds.variables), None)
            if name is None or name not in ds.variables:
                want = f"'{variables[f]}' (mapped from {f})" if f in variables else \
                    f"'{f}'" + (f" or one with standard_name '{std}'" if std else "")
                raise InputError(f"forcing file {path}: variable {want} is missing; map it under "
                                 f"forcing.variables")
            var = ds.variables[name]
            if not var.dimensions or var.dimensions[0] != "time" or var.shape[0] != starts.size:
                raise InputError(f"forcing file {path}: variable '{name}' must have time as its first "
                                 f"dimension ({starts.size} records), has dims {var.dimensions} {var.shape}")
            space = tuple(var.dimensions[1:])
            transpose = False
            if self.dims is not None and space != self.dims:
                if len(space) == 2 and space == self.dims[::-1]:
                    transpose = True
                else:
                    raise InputError(f"forcing file {path}: variable '{name}' has dimensions {var.dimensions}; the "
                                     f"host grid's are {('time', *self.dims)} (matched by name)")
            size = int(np.prod(var.shape[1:]))
            if self.grid_size is None:
                self.grid_size = size
            elif size != self.grid_size:
                raise InputError(f"forcing file {path}: variable '{name}' has {size} cells per record; the host "
                                 f"grid has {self.grid_size} (wrong grid or array length)")
            conv = import_conversion(f, getattr(var, "units", None), f"forcing file {path}, variable '{name}'")
            for r in range(starts.size):
                self.sources[f].append(_Source(path, name, r, conv, transpose))
        return starts, ends

    def record_for(self, when: np.datetime64, dt: int = 0) -> int:
        """Index of the record valid at ``when`` (its start <= when < its end). With ``dt``, the whole step
        [when, when + dt) must lie inside that record: a step spanning several records would read only the
        first of them (sampling 3-hourly forcing once a month), so it is refused."""
        i = int(np.searchsorted(self.times, when, side="right")) - 1
        if i < 0 or when >= self.ends[-1]:
            raise InputError(f"no forcing record covers {when}: the files span {self.times[0]} to {self.ends[-1]}")
        end = when + np.timedelta64(int(dt), "s")
        if end > self.ends[i]:
            if end > self.ends[-1]:
                raise InputError(f"the coupling step {when} to {end} runs past the end of the forcing "
                                 f"({self.ends[-1]})")
            length = int((self.ends[i] - self.times[i]).astype(np.int64))
            raise InputError(f"the coupling step {when} to {end} ({int(dt)} s) spans more than one forcing record "
                             f"(record {i}: {self.times[i]} to {self.ends[i]}, {length} s); the offline driver holds "
                             f"one record per step and would skip the others: use a coupling step no longer than "
                             f"the records and aligned with them")
        return i

    def read(self, field: str, record: int, cells: np.ndarray | None = None) -> np.ndarray:
        """One record of ``field`` in import units as float64, for ``cells`` (flat indices; all when None).

        Fill values keep a recognisable value (the file's fill, or 1e36 after unit conversion) so that the
        component's validation reports them as fill values.
        """
        src = self.sources[field][record]
        var = self._handles[src.path].variables[src.var]
        data = read_array(var, src.record, f"forcing file {src.path}, variable '{src.var}', record {src.record}")
        raw = np.asarray(data, dtype=np.float64)
        raw = (raw.T if src.transpose else raw).ravel()
        if cells is not None:
            raw = raw[cells]
        fills = [getattr(var, a) for a in ("_FillValue", "missing_value") if hasattr(var, a)]
        packed = (float(getattr(var, "scale_factor", 1.0)), float(getattr(var, "add_offset", 0.0)))
        out = src.conv.apply(raw * packed[0] + packed[1] if packed != (1.0, 0.0) else raw)
        if fills:
            is_fill = np.isin(raw, np.asarray(fills, dtype=np.float64).ravel())
            if is_fill.any():
                out = np.where(is_fill, 1.0e36, out)
        return out

    def close(self) -> None:
        for ds in self._handles.values():
            try:
                ds.close()
            except RuntimeError:  # a damaged file may not close cleanly; it is no longer used either way
                pass
        self._handles.clear()
