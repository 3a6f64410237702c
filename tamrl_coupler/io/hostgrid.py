"""The offline driver's host grid: read from a CF file (the forcing itself or a grid file) with land fraction and
cell areas, either a regular lat-lon grid (dims lat, lon) or a point set (dim site, e.g. flux towers).

Nothing in the file's metadata is trusted blindly, because each mistake would scale or drop fluxes silently:
variables are matched to the grid by dimension *name* (a ``(lon, lat)`` variable is transposed, anything else is
an error), the land fraction's ``units`` are read (``1`` or ``%``) and a missing, NaN or out-of-range value is an
error naming the cell, and cell areas are converted from their ``units`` (m2 or km2) and checked against the
grid's own geometry (the spherical areas of its cell bounds on the authalic sphere) to AREA_RTOL.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tamrl_coupler.constants import EARTH_RADIUS
from tamrl_coupler.errors import InputError, RegridError
from tamrl_coupler.io.cfcoords import HostGridInfo
from tamrl_coupler.ncfiles import open_netcdf, read_array
from tamrl_coupler.regrid.grid import bounds_from_centres, latlon_cell_areas

# Cell areas may differ from the spherical areas of the cell bounds by the host's choice of Earth figure (an
# ellipsoid's cell areas differ from the authalic sphere's by up to ~0.7 %) or of great-circle edges (3e-4 for
# 2.5-degree cells); 1 % admits those and catches a wrong unit (km2 for m2: 1e6) or another grid's areas.
AREA_RTOL = 0.01
AREA_UNITS = {"m2": 1.0, "m^2": 1.0, "m**2": 1.0, "m 2": 1.0, "meter2": 1.0, "metre2": 1.0, "square meters": 1.0,
              "square metres": 1.0, "km2": 1.0e6, "km^2": 1.0e6, "km**2": 1.0e6, "km 2": 1.0e6}
FRACTION_UNITS = {"1": 1.0, "": 1.0, "fraction": 1.0, "0-1": 1.0, "(0 - 1)": 1.0, "%": 0.01, "percent": 0.01}
COORD_NAMES = (("lat", "lon"), ("latitude", "longitude"))  # CF files, ERA5 from the CDS
FRACTION_SLACK = 1.0e-6  # float32 rounding of 0 and 1 in a file


@dataclass
class HostGrid:
    """The host grid of an offline run: its layout, and per flat cell centre, area and land fraction."""

    info: HostGridInfo
    lat: np.ndarray  # flat, per cell
    lon: np.ndarray
    area: np.ndarray  # m2
    landfrac: np.ndarray
    dims: tuple[str, ...] = ()  # the file's dimension names of one record, in flat (C) order: (lat, lon) or (site,)

    @property
    def size(self) -> int:
        return self.lat.size


def grid_values(var: Any, dims: tuple[str, ...], where: str) -> np.ndarray:
    """A variable on the grid as float64 in the order of ``dims`` (matched by name; a reversed 2-D variable is
    transposed), masked values as NaN; an error naming the dimensions otherwise."""
    have = tuple(var.dimensions)
    index: Any = ...
    if len(have) == len(dims) + 1 and var.shape[0] == 1:  # one record of a time series (ERA5's land-sea mask)
        have, index = have[1:], 0
    if have not in (dims, dims[::-1]):
        raise InputError(f"{where}: dimensions {have}, expected {dims} (matched by name)")
    data = read_array(var, index, where)
    a = np.ma.filled(np.ma.asarray(data).astype(np.float64), np.nan)
    return a.T if have != dims else a


def _units(var: Any) -> str:
    return str(getattr(var, "units", "")).strip().lower()


def _first_bad(bad: np.ndarray, lat: np.ndarray, lon: np.ndarray) -> str:
    i = int(np.flatnonzero(bad)[0])
    return f"{int(bad.sum())} cell(s), first cell {i} at lat {lat[i]:.3f}, lon {lon[i]:.3f}"


def land_fraction(var: Any, dims: tuple[str, ...], lat: np.ndarray, lon: np.ndarray, where: str) -> np.ndarray:
    """The land fraction in [0, 1] from its ``units`` (1 or %); missing, NaN or out-of-range values are errors."""
    units = _units(var)
    if units not in FRACTION_UNITS:
        raise InputError(f"{where}: land fraction units {units!r} not understood (expected '1' or '%')")
    lf = grid_values(var, dims, where).ravel() * FRACTION_UNITS[units]
    if np.isnan(lf).any():
        raise InputError(f"{where}: land fraction is missing (a fill value or NaN) at "
                         f"{_first_bad(np.isnan(lf), lat, lon)}; give every cell a fraction (0 for ocean)")
    bad = (lf < -FRACTION_SLACK) | (lf > 1.0 + FRACTION_SLACK)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        hint = "; values up to 100 look like percent: set units '%'" if units != "%" and lf.max() <= 100 else ""
        raise InputError(f"{where}: land fraction {lf[i]:g} outside [0, 1] at {_first_bad(bad, lat, lon)} (units "
                         f"{units or 'none'}){hint}")
    return np.clip(lf, 0.0, 1.0)


def cell_area(var: Any, dims: tuple[str, ...], geometric: np.ndarray | None, lat: np.ndarray, lon: np.ndarray,
              where: str) -> np.ndarray:
    """Cell areas in m2 from their ``units`` (m2 when absent), checked against the grid's geometry to AREA_RTOL."""
    units = _units(var)
    if units and units not in AREA_UNITS:
        raise InputError(f"{where}: cell area units {units!r} not understood (expected m2 or km2)")
    area = grid_values(var, dims, where).ravel() * AREA_UNITS.get(units, 1.0)
    bad = ~np.isfinite(area) | (area <= 0)
    if bad.any():
        raise InputError(f"{where}: cell area is missing or not positive at {_first_bad(bad, lat, lon)}")
    if geometric is not None:
        ratio = area / geometric
        off = np.abs(ratio - 1.0) > AREA_RTOL
        if off.any():
            i = int(np.flatnonzero(off)[0])
            raise InputError(f"{where}: cell area {area[i]:.6g} m2 (units {units or 'none, taken as m2'}) differs from "
                             f"the grid's geometry, {geometric[i]:.6g} m2, by a factor {ratio[i]:.6g} at "
                             f"{_first_bad(off, lat, lon)} (tolerance {AREA_RTOL:g}); areas must be in m2 (or say "
                             f"km2 in their units) and belong to this grid")
    return area


def check_bounds(centres: np.ndarray, bounds: np.ndarray, axis: str, where: str) -> np.ndarray:
    """Cell bounds that belong to these cell centres, as (n, 2): the areas of a grid without an area variable are
    computed from them, so bounds shifted by half a cell or taken from another grid would scale every flux. Each
    centre must lie well inside its cell (its middle 80 %), each cell's width must match the spacing of the
    centres (to a factor 1.5), latitudes within [-90, 90]; errors name the cell and the likely mix-up."""
    n = centres.size
    b = np.asarray(bounds, dtype=np.float64)
    if b.shape != (n, 2):
        hint = " (transposed: (2, n) where CF has (n, 2))" if b.shape == (2, n) else ""
        raise InputError(f"{where}: {axis} bounds have shape {b.shape}, expected ({n}, 2){hint}")
    if not np.isfinite(b).all():
        raise InputError(f"{where}: {axis} bounds have missing or non-finite values")
    lo, hi = b.min(axis=1), b.max(axis=1)
    width = hi - lo
    c = lo + np.mod(centres - lo, 360.0) if axis == "lon" else centres
    margin = 0.1 * width
    off = (width <= 0) | (c < lo + margin) | (c > hi - margin)
    if off.any():
        i = int(np.flatnonzero(off)[0])
        raise InputError(f"{where}: {axis} cell {i} at {centres[i]:g} has bounds [{lo[i]:g}, {hi[i]:g}]: the centre "
                         f"is not inside its cell ({int(off.sum())} cells like it); the bounds are shifted or belong "
                         f"to another grid, and the cell areas computed from them would be wrong")
    if axis == "lat" and (lo.min() < -90.0 - 1e-9 or hi.max() > 90.0 + 1e-9):
        raise InputError(f"{where}: lat bounds reach [{lo.min():g}, {hi.max():g}], beyond the poles: shifted bounds")
    if n >= 2:
        spacing = np.abs(np.gradient(np.unwrap(centres, period=360.0) if axis == "lon" else centres))
        ratio = width / spacing
        bad = (ratio < 1 / 1.5) | (ratio > 1.5)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise InputError(f"{where}: {axis} cell {i} at {centres[i]:g} is {width[i]:g} degrees wide by its "
                             f"bounds, but the centres are {spacing[i]:g} degrees apart: the bounds belong to another "
                             f"grid, and the cell areas computed from them would be wrong")
    return b


def read_host_grid(path: Path, landfrac_var: str = "landfrac", area_var: str = "cell_area",
                   required: tuple[str, ...] = ()) -> HostGrid:
    """A regular grid (1-D lat and lon; bounds from the file, else inferred from uniformly spaced centres) or a
    point set (lat and lon on one other dimension; area 1 m2 and land fraction 1 unless the file has them).

    ``landfrac_var`` / ``area_var``: the variables' names (``host.landfrac_variable``, ``host.area_variable``);
    ``required``: those of ``("landfrac_variable", "area_variable")`` the user named, which must then be in the
    file (never replaced by the grid's geometry without a word); otherwise used where the file has them."""
    import netCDF4

    where = f"host grid file {path}"
    with open_netcdf(path, "host grid file") as ds:
        v = ds.variables
        for key, name in (("landfrac_variable", landfrac_var), ("area_variable", area_var)):
            if key in required and name not in v:
                raise InputError(f"{where}: host.{key} names variable {name!r}, which the file does not have (its "
                                 f"variables: {', '.join(sorted(v))}); fix the name, or remove the key to use the "
                                 f"default")
        names = next((n for n in COORD_NAMES if n[0] in v and n[1] in v), None)
        if names is None:
            raise InputError(f"{where}: needs 'lat' and 'lon' variables")
        v = {**v, "lat": v[names[0]], "lon": v[names[1]]}
        lat = np.asarray(read_array(v["lat"], ..., f"{where}, variable '{names[0]}'"), dtype=np.float64)
        lon = np.asarray(read_array(v["lon"], ..., f"{where}, variable '{names[1]}'"), dtype=np.float64)
        if v["lat"].ndim != 1 or v["lon"].ndim != 1:
            raise InputError(f"{where}: 'lat' and 'lon' must be 1-D (a regular grid or a point set)")
        if not (np.isfinite(lat).all() and np.isfinite(lon).all()):
            raise InputError(f"{where}: 'lat' or 'lon' has missing or non-finite values")
        points = v["lat"].dimensions == v["lon"].dimensions and v["lat"].dimensions[0] not in ("lat", "latitude")
        if points:
            dims = tuple(v["lat"].dimensions)
            names = None
            for cand in ("site", "site_name"):
                if cand in v and (v[cand].dtype == str or v[cand].dtype.kind in "OU"):
                    names = [str(s) for s in v[cand][:]]
                    break
                if cand in v and v[cand].dtype.kind == "S":
                    names = [s.decode() if isinstance(s, bytes) else str(s) for s in netCDF4.chartostring(v[cand][:])]
                    break
            info = HostGridInfo("points", lat, lon, site_names=names)
            flat_lat, flat_lon = lat, lon
            geometric = None
        else:
            dims = (v["lat"].dimensions[0], v["lon"].dimensions[0])
            try:
                lat_b = np.asarray(v[v["lat"].bounds][:], dtype=np.float64) if hasattr(v["lat"], "bounds") else \
                    bounds_from_centres(lat, "lat", (-90.0, 90.0))
                lon_b = np.asarray(v[v["lon"].bounds][:], dtype=np.float64) if hasattr(v["lon"], "bounds") else \
                    bounds_from_centres(lon, "lon", None)
            except (RegridError, KeyError, IndexError) as exc:
                raise InputError(f"{where}: {exc}") from None
            lat_b = check_bounds(lat, lat_b, "lat", where)
            lon_b = check_bounds(lon, lon_b, "lon", where)
            info = HostGridInfo("regular", lat, lon, lat_b, lon_b)
            LA, LO = np.meshgrid(lat, lon, indexing="ij")
            flat_lat, flat_lon = LA.ravel(), LO.ravel()
            geometric = latlon_cell_areas(lat_b, lon_b).ravel() * EARTH_RADIUS ** 2
        if landfrac_var in v:
            lf = land_fraction(v[landfrac_var], dims, flat_lat, flat_lon, f"{where}, variable '{landfrac_var}'")
        elif points:
            lf = np.ones(lat.size)
        else:
            raise InputError(f"{where}: land fraction variable '{landfrac_var}' is missing (set "
                             f"host.landfrac_variable)")
        if area_var in v:
            area = cell_area(v[area_var], dims, geometric, flat_lat, flat_lon, f"{where}, variable '{area_var}'")
        else:  # the geometry's, or a nominal 1 m2 for points (point fluxes are per m2 anyway)
            area = geometric if geometric is not None else np.ones(lat.size)
    return HostGrid(info, flat_lat, flat_lon, area, lf, dims)
