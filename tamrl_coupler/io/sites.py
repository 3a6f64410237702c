"""The FluxVal sites as a host: their own real monthly drivers written as CF forcing on a point set.

FluxVal gives monthly means of daily tmin/tmax [degC], shortwave [MJ m-2 d-1], VPD [hPa], precipitation [mm d-1],
CO2, LAI and the IGBP class per site. A host coupling once per month hands the component the same quantities in
its import units: tasmin/tasmax [K], rsds [W m-2], pr [kg m-2 s-1], vpd [Pa], co2 [ppm], lai, igbp (class
index). Missing months stay missing (the component's ``missing`` fill policy passes them to the model as NaN,
as the model's own ``predict`` does).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tamrl_coupler import vocabulary
from tamrl_coupler.data.fluxval import read_fluxval
from tamrl_coupler.errors import InputError
from tamrl_coupler.io.pointforcing import write_point_forcing
from tamrl_coupler.physics.units import import_conversion


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
    fields = {}  # import name -> values (time, site) in its canonical unit
    for name, values in ds.drivers.items():
        imp = vocabulary.IMPORTS[vocabulary.DRIVERS[name].sources[0]]  # the period-level import it comes from
        conv = import_conversion(imp.name, vocabulary.DRIVERS[name].units, f"{src}, driver {name!r}")
        fields[imp.name] = np.asarray(conv.apply(values), dtype=np.float64).T
    attrs = {"title": "FluxVal site drivers as CF forcing for tamrl-coupler (one step per month)",
             "source": f"{Path(src).name}: CARDAMOM-FluxVal v1.0, FLUXNET2015 sites (CC-BY-4.0; "
                       "Pastorello et al. 2020, Sci Data 7:225; Yang et al., CARDAMOM-FluxVal v1.0)"}
    return write_point_forcing(out, fields, t0, t1, str(ref), ds.lat, ds.lon, [str(n) for n in ds.sites], attrs,
                               long_name_prefix=f"{ds.period} mean of ")
