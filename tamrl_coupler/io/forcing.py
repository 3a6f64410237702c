"""Forcing time series for the offline driver: a list or glob of NetCDF or GRIB files in a known layout.

Each import field is read from the files that hold its variable, in time order: one file with every field (GLDAS,
the demo), one file per variable (CMIP6, CRU-JRA), or any mix. The layout (``forcing.layout``:
``io/forcing_layouts.py``) names the variables (ERA5's ``t2m``, CRU-JRA's ``tmp`` ...) and how their amounts are
accumulated; ``forcing.variables`` maps any name explicitly, and a variable whose ``standard_name`` matches is
found without either. Values are decoded (``scale_factor``/``add_offset`` packing, fill values, ERA5's ``expver``
split) and converted into the import's unit by the units library; an *amount* (a unit that is the import's unit
times a time: ERA5 ``ssrd`` J m-2, ``tp`` m, CRU-JRA ``pre`` mm/6h) is turned into the rate over its interval
(``physics/accumulation.py``), taking the previous record off where the accumulation runs on (ERA5-Land).

Each field's record is valid over its interval: from its time (or lower time bound) to the next record's, or for an
amount the interval it was accumulated over. The reader's records are the intersection of all fields' intervals, so
fields on different time axes (3-hourly states, 6-hourly totals, daily extremes) are each held over their own. A
record is read only when asked for (one at a time, the previous one kept for de-accumulation): a year of hourly
ERA5 is never in memory.
"""

from __future__ import annotations

import glob as globmod
from pathlib import Path
from typing import Any

import numpy as np

from tamrl_coupler import vocabulary
from tamrl_coupler.errors import InputError
from tamrl_coupler.io.forcing_layouts import Layout
from tamrl_coupler.io.forcing_layouts import layout as get_layout
from tamrl_coupler.io.forcing_records import FieldRecords, SourceVariable, record_ends
from tamrl_coupler.io.gribfile import GribFile, GribVariable, is_grib
from tamrl_coupler.ncfiles import GREGORIAN_CALENDARS, NOLEAP_CALENDARS, open_netcdf, read_time_axis
from tamrl_coupler.physics.accumulation import deaccumulate, restarts
from tamrl_coupler.physics.units import import_conversion
from tamrl_coupler.settings.paths import resolve_path
from tamrl_coupler.vocabulary import Accumulation, Role

FILL_OUT = 1.0e36  # what a fill value becomes: recognisable to the component's validation
LEAP_DAY_POLICIES = ("error", "hold")


def fields_to_read(variables: dict[str, str], layout: Layout, available: set[str]) -> list[str]:
    """The imports to read from files holding the variables ``available``: those mapped under ``variables``, or
    present by the layout's names, their own name or an alias, plus every required import that cannot be derived
    from them (found by standard name, or named as missing)."""
    mapped = {vocabulary.canonical_name(Role.IMPORT, k) for k in variables}
    fields = [n for n, q in vocabulary.IMPORTS.items()
              if n in mapped or any(name in available for name in (*layout.variables.get(n, ()), n, *q.aliases))]
    fields += [n for n, q in vocabulary.IMPORTS.items() if q.required and not vocabulary.satisfiable(n, set(fields))]
    return fields


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


class ForcingReader:
    """Reads records of the configured files for one rank's host cells (flat global indices).

    ``dims``: the host grid's dimension names of one record (``(lat, lon)`` or ``(site,)``); every variable must
    have them after its time dimension, matched by name (a ``(time, lon, lat)`` variable is transposed when read).
    ``layout``: the files' layout (``io/forcing_layouts.py``); ``leap_day``: ``error`` (a no-leap calendar is
    refused) or ``hold`` (its last record of Feb 28 is held over a Gregorian Feb 29, and counted)."""

    def __init__(self, files: list[Path], variables: dict[str, str], fields: list[str] | None,
                 grid_size: int | None = None, dims: tuple[str, ...] | None = None, layout: str = "cf",
                 leap_day: str = "error"):
        if not files:
            raise InputError("forcing: no files given")
        files = [Path(f) for f in files]
        unknown = [k for k in variables if k not in vocabulary.accepted_names(Role.IMPORT)]
        if unknown:
            raise InputError(f"forcing.variables: {unknown[0]!r} is not an import field; expected some of "
                             f"{sorted(vocabulary.IMPORTS)}")
        if leap_day not in LEAP_DAY_POLICIES:
            raise InputError(f"forcing.leap_day: {leap_day!r}; expected one of {list(LEAP_DAY_POLICIES)}")
        self.variables = {vocabulary.canonical_name(Role.IMPORT, k): v for k, v in variables.items()}
        self.layout: Layout = get_layout(layout)
        self.leap_day = leap_day
        self.files = files
        self.grid_size = grid_size
        self.dims = tuple(dims) if dims else None
        self._handles: dict[Path, Any] = {}
        self.calendars: set[str] = set()
        try:
            for path in files:
                self._handles[path] = GribFile(path) if is_grib(path) else self._open_netcdf(path)
            names = set().union(*(self._names(h) for h in self._handles.values()))
            self.fields = list(fields) if fields is not None else fields_to_read(self.variables, self.layout, names)
            found: dict[str, list[SourceVariable]] = {f: [] for f in self.fields}
            held = {path: self._match(path, found) for path in files}
            for f in self.fields:
                if not found[f]:
                    raise InputError(f"forcing file{'s' if len(files) > 1 else ''} "
                                     f"{', '.join(str(p) for p in files)}: variable {self._wanted(f)} is missing; "
                                     "map it under forcing.variables")
            for path, n in held.items():
                if not n:
                    raise InputError(f"forcing file {path} holds none of the fields {self.fields} (layout "
                                     f"'{self.layout.name}'; map names under forcing.variables)")
            self._fields = {f: self._join(f, found[f]) for f in self.fields}
            self.times, self.ends = self._common_records()
        except BaseException:
            self.close()
            raise

    # --- opening ---------------------------------------------------------------------------------------------------
    def _wanted(self, f: str) -> str:
        if f in self.variables:
            return f"'{self.variables[f]}' (mapped from {f})"
        std = vocabulary.IMPORTS[f].standard_name
        names = [f"'{n}'" for n in dict.fromkeys((f, *self.layout.variables.get(f, ())))]
        return " or ".join(names) + (f" or one with standard_name '{std}'" if std else "")

    def _name_in(self, f: str, names: set[str], by_std: dict[str, str]) -> str | None:
        if f in self.variables:
            return self.variables[f] if self.variables[f] in names else None
        q = vocabulary.IMPORTS[f]
        for cand in (*self.layout.variables.get(f, ()), f, *q.aliases):
            if cand in names:
                return cand
        cand = by_std.get(q.standard_name) if q.standard_name else None
        if cand is not None and any(cand in (*self.layout.variables.get(g, ()), g, *p.aliases)
                                    for g, p in vocabulary.IMPORTS.items() if g != f):
            return None  # another import's variable sharing the standard name (tasmax is air_temperature too)
        return cand

    def _open_netcdf(self, path: Path) -> Any:
        ds = open_netcdf(path, "forcing file")
        ds.set_auto_maskandscale(False)
        return ds

    @staticmethod
    def _names(handle: Any) -> set[str]:
        return set(handle.variables)

    def _match(self, path: Path, found: dict[str, list[SourceVariable]]) -> int:
        """Adds this file's variables of the fields to ``found``; returns how many fields it holds."""
        handle = self._handles[path]
        if isinstance(handle, GribFile):
            held = 0
            for f in self.fields:
                name = self._name_in(f, set(handle.variables), {})
                if name is not None:
                    v = handle.variables[name]
                    found[f].append(self._var(path, f, name, v, v.dims, v.shape, v.units, v.valid, None))
                    held += 1
            return held
        ds = handle
        tname = next((t for t in self.layout.time_names if t in ds.variables), "time")
        where = f"forcing file {path}"
        calendars = GREGORIAN_CALENDARS + (NOLEAP_CALENDARS if self.leap_day == "hold" else ())
        starts, ends, _ = read_time_axis(ds, where, tname, calendars)
        calendar = str(getattr(ds.variables[tname], "calendar", "standard")).strip().lower()
        self.calendars.add(calendar)
        bname = getattr(ds.variables[tname], "bounds", None)
        has_bounds = bool(bname) and bname in ds.variables
        d = np.diff(starts.astype(np.int64))
        if d.size and (d <= 0).any():
            i = int(np.flatnonzero(d <= 0)[0])
            raise InputError(f"forcing time is not strictly increasing: record {i + 1} at {starts[i + 1]} follows "
                             f"{starts[i]} (file {path})")
        by_std = {getattr(v, "standard_name", None): n for n, v in ds.variables.items()}
        held = 0
        for f in self.fields:
            name = self._name_in(f, set(ds.variables), by_std)
            if name is None:
                if f in self.variables and len(self.files) == 1:
                    raise InputError(f"forcing file {path}: variable {self._wanted(f)} is missing; map it under "
                                     "forcing.variables")
                continue
            var = ds.variables[name]
            if not var.dimensions or var.dimensions[0] != tname or var.shape[0] != starts.size:
                raise InputError(f"forcing file {path}: variable '{name}' must have {tname} as its first "
                                 f"dimension ({starts.size} records), has dims {var.dimensions} {var.shape}")
            space = tuple(var.dimensions[1:])
            expver = len(space) >= 2 and space[0] == "expver"
            if expver:
                space = space[1:]
            shape = tuple(ds.dimensions[d].size for d in space)
            found[f].append(self._var(path, f, name, var, space, shape, getattr(var, "units", None), starts, ends,
                                      has_bounds, calendar in NOLEAP_CALENDARS, expver))
            held += 1
        return held

    def _var(self, path: Path, f: str, name: str, handle: Any, space: tuple[str, ...], shape: tuple[int, ...],
             units: str | None, stamps: np.ndarray, bounds_end: np.ndarray | None, has_bounds: bool = False,
             noleap: bool = False, expver: bool = False) -> SourceVariable:
        """One variable as import ``f``: its records' intervals (``bounds_end``: the ends read with the time axis,
        CF bounds when ``has_bounds``, else a no-leap calendar's next records) and its conversion."""
        where = f"forcing file {path}, variable '{name}'"
        transpose = False
        if self.dims is not None and space != self.dims:
            if len(space) == 2 and space == self.dims[::-1]:
                transpose = True
            else:
                raise InputError(f"forcing file {path}: variable '{name}' has dimensions "
                                 f"{('time', *space)}; the host grid's are {('time', *self.dims)} (matched by name)")
        size = int(np.prod(shape))
        if self.grid_size is None:
            self.grid_size = size
        elif size != self.grid_size:
            raise InputError(f"forcing file {path}: variable '{name}' has {size} cells per record; the host grid has "
                             f"{self.grid_size} (wrong grid or array length)")
        units = self.layout.units.get(str(units).strip(), units) if units is not None else None
        q = vocabulary.IMPORTS[f]
        bounds = bounds_end if has_bounds or noleap else None
        if self._amount(f, units, where) is None:
            conv, amount, position = import_conversion(f, units, where), None, "held"
            methods = str(getattr(handle, "cell_methods", "")) if not isinstance(handle, GribVariable) else ""
            if has_bounds:
                position = "bounds"
            elif name in self.layout.means_ending:  # a mean over the hour before the stamp
                position = "ending"
            elif self.layout.centred_means and "time:" in methods and "time: point" not in methods:
                position = "centred"  # CMOR: a statistic over the interval centred on its stamp
        else:
            conv = import_conversion(f, f"{units} s-1", where)
            if has_bounds:  # CF bounds say what each amount is over
                amount, position = Accumulation.BOUNDS, "bounds"
            elif self.layout.accumulation is None:
                raise InputError(f"{where}: units {units!r} are an amount ({q.name} is a rate in {q.units}); without "
                                 "time bounds the interval it was accumulated over is unknown: set forcing.layout "
                                 "(era5, era5_land, crujra) or add time bounds")
            else:
                amount = self.layout.accumulation
                position = "ending" if amount in (Accumulation.ENDING, Accumulation.SINCE_00UTC) else "starting"
        return SourceVariable(path, name, handle, stamps, position, bounds, noleap, conv, amount, transpose, expver)

    @staticmethod
    def _amount(f: str, units: str | None, where: str) -> bool | None:
        """Whether ``units`` are an amount of the rate import ``f`` (its unit times a time): True, else None."""
        if units is None:
            return None
        try:
            import_conversion(f, units, where)
            return None
        except InputError as direct:
            try:
                import_conversion(f, f"{units} s-1", where)
            except InputError:
                raise direct from None
            return True

    def _join(self, f: str, parts: list[SourceVariable]) -> FieldRecords:
        parts = sorted(parts, key=lambda v: v.stamps[0])
        where = f"forcing field '{f}' (files {', '.join(str(v.path) for v in parts)})"
        starts = np.concatenate([v.stamps for v in parts])
        d = np.diff(starts.astype(np.int64))
        if d.size and (d <= 0).any():
            i = int(np.flatnonzero(d <= 0)[0])
            raise InputError(f"forcing time is not strictly increasing: record {i + 1} at {starts[i + 1]} "
                             f"follows {starts[i]} ({where})")
        field = FieldRecords(f, parts, where)
        record_ends(field.starts, field.ends, where)  # contiguous across files
        return field

    def _common_records(self) -> tuple[np.ndarray, np.ndarray]:
        """The intersection of every field's record intervals over the span they all cover."""
        lo = max(fl.starts[0] for fl in self._fields.values())
        hi = min(fl.ends[-1] for fl in self._fields.values())
        if lo >= hi:
            spans = ", ".join(f"{f} {fl.starts[0]}..{fl.ends[-1]}" for f, fl in self._fields.items())
            raise InputError(f"forcing fields cover no common time: {spans}")
        edges = np.unique(np.concatenate([np.concatenate([fl.starts, fl.ends]) for fl in self._fields.values()]))
        edges = edges[(edges >= lo) & (edges <= hi)]
        starts, ends = edges[:-1], edges[1:]
        self._index = {f: np.searchsorted(fl.starts, starts, side="right") - 1 for f, fl in self._fields.items()}
        return starts, ends

    # --- reading ---------------------------------------------------------------------------------------------------
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

        Fill values keep a recognisable value (1e36) so that the component's validation reports them as fill
        values; an amount becomes the rate over its interval."""
        fl = self._fields[field]
        r = int(self._index[field][record])
        var, local = fl.locate(r)
        values, fill = fl.decoded(r)
        if var.amount is not None:
            values, fill = self._rate(fl, r, var, float(var.seconds[local]), values, fill)
        out = var.conv.apply(values)
        if cells is not None:
            out = out[cells]
            fill = fill[cells] if fill is not None else None
        if fill is not None:
            out = np.where(fill, FILL_OUT, out)
        return out

    def _rate(self, fl: FieldRecords, r: int, var: SourceVariable, seconds: float, values: np.ndarray,
              fill: np.ndarray | None) -> tuple[np.ndarray, np.ndarray | None]:
        """The rate over record ``r``'s accumulation interval of ``seconds`` (the previous amount taken off where
        the accumulation runs on); a decrease beyond the packing's rounding is an error naming the layout."""
        start, end = fl.starts[r], fl.ends[r]
        previous = None
        if not restarts(start, var.amount):
            if r == 0 or fl.ends[r - 1] != start:
                raise InputError(f"forcing file {var.path}, variable '{var.name}': the amount at {end} is accumulated "
                                 f"since 00 UTC and the record before it ({start}) is not in the files: start the "
                                 "forcing at 00 UTC or one record earlier")
            previous, pfill = self._previous(fl, r)
            fill = pfill if fill is None else (fill if pfill is None else fill | pfill)
        rate = deaccumulate(values, previous, seconds)
        neg = rate < 0
        if neg.any():
            tol = 2.0 * max(var.quantum, 1e-12 * float(np.nanmax(np.abs(values)))) / seconds
            bad = neg & (rate < -tol)
            if fill is not None:
                bad &= ~fill
            if bad.any():
                i = int(np.flatnonzero(bad)[0])
                raise InputError(f"forcing file {var.path}, variable '{var.name}', {start} to {end}: the amount "
                                 f"decreases ({rate[i] * seconds:g} over the interval at cell {i}); layout "
                                 f"'{self.layout.name}' says amounts are accumulated '{var.amount.value}': is it "
                                 "the layout of this file (era5: over each hour; era5_land: since 00 UTC)?")
            rate[neg] = 0.0  # packing rounding of an amount that did not change
        return rate, fill

    def _previous(self, fl: FieldRecords, r: int) -> tuple[np.ndarray, np.ndarray | None]:
        var, local = fl.locate(r - 1)
        return var.decode(local)

    def calendar_note(self, start: np.datetime64 | None = None, end: np.datetime64 | None = None) -> str:
        """What the files' calendars mean for the run: the Gregorian Feb 29s a no-leap file's Feb 28 was held over
        (within [start, end) when given)."""
        noleap = sorted(self.calendars & set(NOLEAP_CALENDARS))
        if not noleap:
            return "proleptic Gregorian"
        lo = self.times[0] if start is None else start
        hi = self.ends[-1] if end is None else end
        days = np.arange(lo.astype("datetime64[D]"), hi.astype("datetime64[D]") + 1)
        leap = [str(d) for d in days if str(d)[5:] == "02-29" and lo <= d < hi]
        return (f"{'/'.join(noleap)}: no Feb 29; " + (f"the last record of Feb 28 held over {', '.join(leap)} "
                                                      f"({len(leap)} day(s))" if leap else "no Feb 29 in the run"))

    def close(self) -> None:
        for h in self._handles.values():
            try:
                h.close()
            except RuntimeError:  # a damaged file may not close cleanly; it is no longer used either way
                pass
        self._handles.clear()
