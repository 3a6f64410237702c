"""The FluxVal sites as a host: their own real monthly drivers written as CF forcing on a point set.

FluxVal gives monthly means of daily tmin/tmax [degC], shortwave [MJ m-2 d-1], VPD [hPa], precipitation [mm d-1],
CO2, LAI and the IGBP class per site. A host coupling once per month hands the component the same quantities in
its import units: tasmin/tasmax [K], rsds [W m-2], pr [kg m-2 s-1], vpd [Pa], co2 [ppm], lai, igbp (class
index). Missing months stay missing (the component's ``missing`` fill policy passes them to the model as NaN,
as the model's own ``predict`` does).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from tamrl_coupler import vocabulary
from tamrl_coupler.data.fluxval import read_fluxval
from tamrl_coupler.errors import InputError
from tamrl_coupler.io.cfcoords import HostGridInfo, write_horizontal_coords
from tamrl_coupler.ncfiles import write_atomic_netcdf
from tamrl_coupler.physics.units import import_conversion

FILL = np.float64(1.0e20)


def fluxval_to_cf_forcing(src: Path, out: Path, sites: list[str] | None = None) -> Path:
    """The FluxVal file's sites (all, or ``sites``) as CF forcing on a point set, one record per month, every driver
    as the import it is made from, in that import's unit (the vocabulary says which and in what)."""
    ds = read_fluxval(src)
    if sites:
        index = [int(np.flatnonzero(ds.sites == s)[0]) for s in sites if (ds.sites == s).any()]
        unknown = [s for s in sites if not (ds.sites == s).any()]
        if unknown:
            raise InputError(f"forcing.sites: {unknown} are not in {src}")
        ds = ds.subset(np.asarray(index))
    ref = np.datetime64(str(ds.time[0].astype("datetime64[Y]")) + "-01-01T00:00:00", "s")
    starts = ds.time.astype("datetime64[M]")
    t0 = (starts.astype("datetime64[s]") - ref).astype(np.int64).astype(np.float64)
    t1 = ((starts + np.timedelta64(1, "M")).astype("datetime64[s]") - ref).astype(np.int64).astype(np.float64)
    fields = {}  # import name -> (values (time, site) in its canonical unit, its vocabulary entry)
    for name, values in ds.drivers.items():
        imp = vocabulary.IMPORTS[vocabulary.DRIVERS[name].sources[0]]  # the period-level import it comes from
        conv = import_conversion(imp.name, vocabulary.DRIVERS[name].units, f"{src}, driver {name!r}")
        fields[imp.name] = (conv.apply(values), imp)

    def fill(nc: Any) -> None:
        nc.setncattr("Conventions", "CF-1.8")
        nc.setncattr("title", "FluxVal site drivers as CF forcing for tamrl-coupler (one step per month)")
        nc.setncattr("source", f"{Path(src).name}: CARDAMOM-FluxVal v1.0, FLUXNET2015 sites (CC-BY-4.0; "
                               "Pastorello et al. 2020, Sci Data 7:225; Yang et al., CARDAMOM-FluxVal v1.0)")
        nc.createDimension("time", len(t0))
        nc.createDimension("nv", 2)
        t = nc.createVariable("time", "f8", ("time",))
        t.units, t.calendar, t.standard_name, t.bounds = (f"seconds since {str(ref).replace('T', ' ')}",
                                                          "proleptic_gregorian", "time", "time_bnds")
        t[:] = t0
        nc.createVariable("time_bnds", "f8", ("time", "nv"))[:] = np.stack([t0, t1], 1)
        space, coords = write_horizontal_coords(nc, HostGridInfo("points", ds.lat, ds.lon,
                                                                 site_names=[str(n) for n in ds.sites]))
        lf = nc.createVariable("landfrac", "f8", space)
        lf.standard_name, lf.units = "land_area_fraction", "1"
        lf[:] = 1.0
        for name, (vals, q) in fields.items():
            v = nc.createVariable(name, "f8", ("time", *space), fill_value=FILL)
            v.units, v.long_name = q.units, f"{ds.period} mean of {q.long_name}"
            if q.standard_name:
                v.standard_name = q.standard_name
            v.coordinates = coords
            a = np.asarray(vals, dtype=np.float64).T
            v[:] = np.where(np.isfinite(a), a, FILL)  # float64: the unit round trip stays exact to 1e-15

    return write_atomic_netcdf(out, fill)
