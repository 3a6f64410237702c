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
from tamrl_coupler.config.paths import resolve_path
from tamrl_coupler.errors import InputError
from tamrl_coupler.ncfiles import open_netcdf, read_times
from tamrl_coupler.physics.units import ScalarConversion, import_conversion
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


class ForcingReader:
    """Reads records of the configured files for one rank's host cells (flat global indices)."""

    def __init__(self, files: list[Path], variables: dict[str, str], fields: list[str],
                 grid_size: int | None = None):
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
        self.times_list: list[np.ndarray] = []
        self.sources: dict[str, list[_Source]] = {f: [] for f in self.fields}
        self.grid_size = grid_size
        self._handles: dict[Path, netCDF4.Dataset] = {}
        for path in files:
            ds = open_netcdf(path, "forcing file")
            ds.set_auto_maskandscale(False)
            self._handles[path] = ds
            times = read_times(ds, f"forcing file {path}")
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
                if var.dimensions[0] != "time" or var.shape[0] != times.size:
                    raise InputError(f"forcing file {path}: variable '{name}' must have time as its first "
                                     f"dimension ({times.size} records), has dims {var.dimensions} {var.shape}")
                size = int(np.prod(var.shape[1:]))
                if self.grid_size is None:
                    self.grid_size = size
                elif size != self.grid_size:
                    raise InputError(f"forcing file {path}: variable '{name}' has {size} cells per record; the host "
                                     f"grid has {self.grid_size} (wrong grid or array length)")
                conv = import_conversion(f, getattr(var, "units", None), f"forcing file {path}, variable '{name}'")
                for r in range(times.size):
                    self.sources[f].append(_Source(path, name, r, conv))
            self.times_list.append(times)
        self.times = np.concatenate(self.times_list)
        d = np.diff(self.times.astype(np.int64))
        if d.size and (d <= 0).any():
            i = int(np.flatnonzero(d <= 0)[0])
            raise InputError(f"forcing time is not strictly increasing: record {i + 1} at {self.times[i + 1]} follows "
                             f"{self.times[i]} (files {[str(f) for f in files]})")
        self.record_seconds = int(d[-1]) if d.size else None

    def record_for(self, when: np.datetime64) -> int:
        """Index of the record valid at ``when`` (its time <= when < the next record's)."""
        i = int(np.searchsorted(self.times, when, side="right")) - 1
        last_end = self.times[-1] + np.timedelta64(self.record_seconds or 0, "s")
        if i < 0 or when >= last_end:
            raise InputError(f"no forcing record covers {when}: the files span {self.times[0]} to {last_end}")
        return i

    def read(self, field: str, record: int, cells: np.ndarray | None = None) -> np.ndarray:
        """One record of ``field`` in import units as float64, for ``cells`` (flat indices; all when None).

        Fill values keep a recognisable value (the file's fill, or 1e36 after unit conversion) so that the
        component's validation reports them as fill values.
        """
        src = self.sources[field][record]
        var = self._handles[src.path].variables[src.var]
        raw = np.asarray(var[src.record], dtype=np.float64).ravel()
        if cells is not None:
            raw = raw[cells]
        fills = [getattr(var, a) for a in ("_FillValue", "missing_value") if hasattr(var, a)]
        packed = (float(getattr(var, "scale_factor", 1.0)), float(getattr(var, "add_offset", 0.0)))
        out = src.conv.apply(raw * packed[0] + packed[1] if packed != (1.0, 0.0) else raw)
        if fills:
            is_fill = np.isin(raw, np.asarray(fills, dtype=np.float64))
            if is_fill.any():
                out = np.where(is_fill, 1.0e36, out)
        return out

    def close(self) -> None:
        for ds in self._handles.values():
            ds.close()
        self._handles.clear()
