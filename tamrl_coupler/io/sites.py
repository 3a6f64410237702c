"""The FluxVal sites as a host: their own real monthly drivers written as CF forcing on a point set.

FluxVal gives monthly means of daily tmin/tmax [degC], shortwave [MJ m-2 d-1], VPD [hPa], precipitation [mm d-1],
CO2, LAI and the IGBP class per site. A host coupling once per month hands the component the same quantities in
its import units: tasmin/tasmax [K], rsds [W m-2], pr [kg m-2 s-1], vpd [Pa], co2 [ppm], lai, landcover (class
index). Missing months stay missing (the component's ``missing`` fill policy passes them to the model as NaN,
as the model's own ``predict`` does).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tamrl_coupler.errors import InputError
from tamrl_coupler.io.restart import write_atomic_netcdf

FILL = np.float64(1.0e20)


def fluxval_to_cf_forcing(src: Path, out: Path, sites: list[str] | None = None) -> Path:
    from tamrl_coupler.data.fluxval import read_fluxval

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
    d = ds.drivers
    fields = {
        "tasmin": (d["tmin"] + 273.15, "K", "air_temperature", "monthly mean of daily minimum air temperature"),
        "tasmax": (d["tmax"] + 273.15, "K", "air_temperature", "monthly mean of daily maximum air temperature"),
        "rsds": (d["swdown"] * (1e6 / 86400.0), "W m-2", "surface_downwelling_shortwave_flux_in_air",
                 "monthly mean downwelling shortwave"),
        "pr": (d["precip"] / 86400.0, "kg m-2 s-1", "precipitation_flux", "monthly mean precipitation rate"),
        "vpd": (d["vpd"] * 100.0, "Pa", None, "monthly mean vapour pressure deficit"),
    }
    for name, units, long in (("co2", "ppm", "atmospheric CO2 mole fraction"), ("lai", "m2 m-2", "MODIS LAI"),
                              ("igbp", "1", "IGBP class index")):
        if name in d:
            fields["landcover" if name == "igbp" else name] = (d[name], units, None, long)

    def fill(nc):
        import netCDF4

        nc.setncattr("Conventions", "CF-1.8")
        nc.setncattr("featureType", "timeSeries")
        nc.setncattr("title", "FluxVal site drivers as CF forcing for tamrl-coupler (one step per month)")
        nc.setncattr("source", f"{Path(src).name}: CARDAMOM-FluxVal v1.0, FLUXNET2015 sites (CC-BY-4.0; "
                               "Pastorello et al. 2020, Sci Data 7:225; Yang et al., CARDAMOM-FluxVal v1.0)")
        nc.createDimension("time", len(t0))
        nc.createDimension("site", ds.n_sites)
        nc.createDimension("nv", 2)
        width = max(len(s) for s in ds.sites)
        nc.createDimension("name_strlen", width)
        t = nc.createVariable("time", "f8", ("time",))
        t.units, t.calendar, t.standard_name, t.bounds = (f"seconds since {str(ref).replace('T', ' ')}",
                                                          "proleptic_gregorian", "time", "time_bnds")
        t[:] = t0
        nc.createVariable("time_bnds", "f8", ("time", "nv"))[:] = np.stack([t0, t1], 1)
        for nm, vals, units, std in (("lat", ds.lat, "degrees_north", "latitude"),
                                     ("lon", ds.lon, "degrees_east", "longitude")):
            v = nc.createVariable(nm, "f8", ("site",))
            v.units, v.standard_name = units, std
            v[:] = vals
        s = nc.createVariable("site_name", "S1", ("site", "name_strlen"))
        s.cf_role = "timeseries_id"
        s[:] = netCDF4.stringtochar(np.array(list(ds.sites), dtype=f"S{width}"))
        lf = nc.createVariable("landfrac", "f8", ("site",))
        lf.standard_name, lf.units = "land_area_fraction", "1"
        lf[:] = 1.0
        for name, (vals, units, std, long) in fields.items():
            v = nc.createVariable(name, "f8", ("time", "site"), fill_value=FILL)
            v.units, v.long_name = units, long
            if std:
                v.standard_name = std
            v.coordinates = "lat lon site_name"
            a = np.asarray(vals, dtype=np.float64).T
            v[:] = np.where(np.isfinite(a), a, FILL)  # float64: the unit round trip stays exact to 1e-15

    return write_atomic_netcdf(out, fill)
