"""The offline driver's host grid: read from a CF file (the forcing itself or a grid file) with land fraction and
cell areas, either a regular lat-lon grid (dims lat, lon) or a point set (dim site, e.g. flux towers)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tamrl_coupler.constants import EARTH_RADIUS
from tamrl_coupler.errors import InputError, RegridError
from tamrl_coupler.io.cfcoords import HostGridInfo
from tamrl_coupler.ncfiles import open_netcdf
from tamrl_coupler.regrid.grid import bounds_from_centres, latlon_cell_areas


@dataclass
class HostGrid:
    """The host grid of an offline run: its layout, and per flat cell centre, area and land fraction."""

    info: HostGridInfo
    lat: np.ndarray  # flat, per cell
    lon: np.ndarray
    area: np.ndarray  # m2
    landfrac: np.ndarray

    @property
    def size(self) -> int:
        return self.lat.size


def read_host_grid(path: Path, landfrac_var: str = "landfrac", area_var: str = "cell_area") -> HostGrid:
    """A regular grid (1-D lat and lon; bounds from the file, else inferred from uniformly spaced centres) or a
    point set (lat and lon on one other dimension; area 1 m2 and land fraction 1 unless the file has them)."""
    import netCDF4

    with open_netcdf(path, "host grid file") as ds:
        v = ds.variables
        if "lat" not in v or "lon" not in v:
            raise InputError(f"host grid file {path}: needs 'lat' and 'lon' variables")
        lat = np.asarray(v["lat"][:], dtype=np.float64)
        lon = np.asarray(v["lon"][:], dtype=np.float64)
        lf = np.asarray(v[landfrac_var][:], dtype=np.float64).ravel() if landfrac_var in v else None
        area = np.asarray(v[area_var][:], dtype=np.float64).ravel() if area_var in v else None
        points = v["lat"].dimensions == v["lon"].dimensions and len(v["lat"].dimensions) == 1 and \
            v["lat"].dimensions[0] not in ("lat",)
        if points:
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
            lf = np.ones(lat.size) if lf is None else lf
            area = np.ones(lat.size) if area is None else area  # a nominal 1 m2: point fluxes are per m2 anyway
        else:
            try:
                lat_b = np.asarray(v[v["lat"].bounds][:], dtype=np.float64) if hasattr(v["lat"], "bounds") else \
                    bounds_from_centres(lat, "lat", (-90.0, 90.0))
                lon_b = np.asarray(v[v["lon"].bounds][:], dtype=np.float64) if hasattr(v["lon"], "bounds") else \
                    bounds_from_centres(lon, "lon", None)
            except RegridError as exc:
                raise InputError(f"host grid file {path}: {exc}") from None
            info = HostGridInfo("regular", lat, lon, lat_b, lon_b)
            LA, LO = np.meshgrid(lat, lon, indexing="ij")
            flat_lat, flat_lon = LA.ravel(), LO.ravel()
            if area is None:
                area = latlon_cell_areas(lat_b, lon_b) * EARTH_RADIUS ** 2
            if lf is None:
                raise InputError(f"host grid file {path}: land fraction variable '{landfrac_var}' is missing "
                                 f"(set host.landfrac_variable)")
    n = flat_lat.size
    for nm, a in (("land fraction", lf), ("cell area", area)):
        if a.size != n:
            raise InputError(f"host grid file {path}: {nm} has {a.size} values, the grid has {n} cells")
    lf = np.where(np.isfinite(lf), lf, 0.0)
    return HostGrid(info, flat_lat, flat_lon, area, np.clip(lf, 0.0, 1.0))
