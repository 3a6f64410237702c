"""One writer of point-set CF forcing: what the offline driver reads as a point host (``host.grid: forcing``).

Used by the FluxVal sites (``io/sites.py``) and the flux towers (``io/towerforcing.py``): (time, site) float64
variables named by their import field, in the vocabulary's unit of that field, missing values as the fill value;
time with bounds; the sites as a CF timeSeries coordinate; land fraction 1.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from tamrl_coupler import vocabulary
from tamrl_coupler.io.cfcoords import HostGridInfo, write_horizontal_coords
from tamrl_coupler.ncfiles import write_atomic_netcdf

FILL = np.float64(1.0e20)


def write_point_forcing(out: Path, fields: dict[str, np.ndarray], t0: np.ndarray, t1: np.ndarray, ref: str,
                        lat: np.ndarray, lon: np.ndarray, sites: list[str], attrs: dict[str, str],
                        long_name_prefix: str = "") -> Path:
    """``fields``: import name -> (time, site) values in that import's unit; ``t0``/``t1`` the records' start and
    end in seconds since ``ref``; ``attrs`` the global attributes after Conventions (title, source, ...)."""

    def fill(nc: Any) -> None:
        nc.setncattr("Conventions", "CF-1.8")
        for key, value in attrs.items():
            nc.setncattr(key, value)
        nc.createDimension("time", len(t0))
        nc.createDimension("nv", 2)
        t = nc.createVariable("time", "f8", ("time",))
        t.units, t.calendar, t.standard_name, t.bounds = (f"seconds since {str(ref).replace('T', ' ')}",
                                                          "proleptic_gregorian", "time", "time_bnds")
        t[:] = t0
        nc.createVariable("time_bnds", "f8", ("time", "nv"))[:] = np.stack([t0, t1], 1)
        space, coords = write_horizontal_coords(nc, HostGridInfo("points", lat, lon, site_names=sites))
        lf = nc.createVariable("landfrac", "f8", space)
        lf.standard_name, lf.units = "land_area_fraction", "1"
        lf[:] = 1.0
        for name, values in fields.items():
            q = vocabulary.IMPORTS[name]
            v = nc.createVariable(name, "f8", ("time", *space), fill_value=FILL)
            v.units, v.long_name = q.units, long_name_prefix + q.long_name
            if q.standard_name:
                v.standard_name = q.standard_name
            v.coordinates = coords
            a = np.asarray(values, dtype=np.float64)
            v[:] = np.where(np.isfinite(a), a, FILL)  # float64: the unit round trip stays exact to 1e-15

    return write_atomic_netcdf(out, fill)
