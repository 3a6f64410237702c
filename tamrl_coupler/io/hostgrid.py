"""The offline driver's host grid: read from a CF file (the forcing itself or a grid file) with land fraction and
cell areas, either a regular lat-lon grid (dims lat, lon) or a point set (dim site, e.g. flux towers)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tamrl_coupler.errors import InputError
from tamrl_coupler.io.output import HostGridInfo

EARTH_RADIUS = 6371007.181


@dataclass
class HostGrid:
    info: HostGridInfo
    lat: np.ndarray  # flat, per cell
    lon: np.ndarray
    area: np.ndarray  # m2
    landfrac: np.ndarray

    @property
    def size(self) -> int:
        return self.lat.size


def _bounds(c: np.ndarray, clip: tuple[float, float] | None) -> np.ndarray:
    d = np.diff(c)
    edges = np.concatenate([[c[0] - d[0] / 2], c[:-1] + d / 2, [c[-1] + d[-1] / 2]]) if c.size > 1 else \
        np.array([c[0] - 0.5, c[0] + 0.5])
    if clip:
        edges = np.clip(edges, *clip)
    return np.stack([edges[:-1], edges[1:]], 1)


def read_host_grid(path: Path, landfrac_var: str = "landfrac", area_var: str = "cell_area") -> HostGrid:
    import netCDF4

    if not Path(path).exists():
        raise InputError(f"host grid file {path} does not exist")
    with netCDF4.Dataset(path) as ds:
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
            lat_b = np.asarray(v[v["lat"].bounds][:], dtype=np.float64) if hasattr(v["lat"], "bounds") else \
                _bounds(lat, (-90.0, 90.0))
            lon_b = np.asarray(v[v["lon"].bounds][:], dtype=np.float64) if hasattr(v["lon"], "bounds") else \
                _bounds(lon, None)
            info = HostGridInfo("regular", lat, lon, lat_b, lon_b)
            LA, LO = np.meshgrid(lat, lon, indexing="ij")
            flat_lat, flat_lon = LA.ravel(), LO.ravel()
            if area is None:
                area = (EARTH_RADIUS ** 2 * np.deg2rad(lon_b[:, 1] - lon_b[:, 0])[None, :]
                        * np.abs(np.sin(np.deg2rad(lat_b[:, 1])) - np.sin(np.deg2rad(lat_b[:, 0])))[:, None]).ravel()
            if lf is None:
                raise InputError(f"host grid file {path}: land fraction variable '{landfrac_var}' is missing "
                                 f"(set host.landfrac_variable)")
    n = flat_lat.size
    for nm, a in (("land fraction", lf), ("cell area", area)):
        if a.size != n:
            raise InputError(f"host grid file {path}: {nm} has {a.size} values, the grid has {n} cells")
    lf = np.where(np.isfinite(lf), lf, 0.0)
    return HostGrid(info, flat_lat, flat_lon, area, np.clip(lf, 0.0, 1.0))
