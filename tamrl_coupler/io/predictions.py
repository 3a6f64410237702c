"""The predictions file of ``tamrl-coupler predict``: the ensemble's fluxes and spreads over a dataset's sites as
CF discrete sampling geometry (timeSeries) NetCDF, NEE's direction stated."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from tamrl_coupler.atomicfile import atomic_path
from tamrl_coupler.data.dataset import FluxDataset
from tamrl_coupler.model.inference import FIELDS
from tamrl_coupler.physics.carbon import SignConvention

if TYPE_CHECKING:
    from tamrl_coupler.model.ensemble import Ensemble


def write_predictions(pred: dict[str, np.ndarray], data: FluxDataset, ens: Ensemble, path: str | Path,
                      convention: SignConvention | str, checkpoint: str) -> Path:
    """NetCDF with gpp, reco, nee (+ *_std) on (site, time); NEE's direction in ``positive`` and global attributes."""
    import xarray as xr

    conv = SignConvention.parse(convention)
    units = "g m-2 d-1"  # grams of carbon (the standard names say 'expressed_as_carbon'); = gC m-2 d-1
    attrs = {
        "gpp": {"long_name": "gross primary productivity (ensemble mean), gC m-2 d-1",
                "standard_name": "gross_primary_productivity_of_biomass_expressed_as_carbon"},
        "reco": {"long_name": "ecosystem respiration (ensemble mean), gC m-2 d-1"},
        "nee": {"long_name": f"net ecosystem exchange (ensemble mean), gC m-2 d-1, {conv.formula}",
                "positive": conv.cf_positive, "comment": f"{conv.formula} exactly (derived from gpp and reco)"},
    }
    if conv is SignConvention.UPTAKE_POSITIVE:
        attrs["nee"]["standard_name"] = ("surface_net_downward_mass_flux_of_carbon_dioxide_expressed_as_carbon_due_"
                                         "to_all_land_processes_excluding_anthropogenic_land_use_change")
    # CF discrete sampling geometry (timeSeries): sites along a plain dimension, names in a cf_role variable
    unit = {"daily": "D", "monthly": "M"}[data.period]
    start = np.asarray(data.time).astype(f"datetime64[{unit}]")
    bounds = np.stack([start, start + 1], axis=1).astype("datetime64[ns]")  # each value is its period's mean
    ds = xr.Dataset(coords={
        "time": ("time", data.time, {"standard_name": "time", "axis": "T", "bounds": "time_bnds"}),
        "site_name": ("site", data.sites.astype(str), {"cf_role": "timeseries_id", "long_name": "FLUXNET site id"})})
    ds["time_bnds"] = (("time", "nv"), bounds)
    for k in FIELDS:
        base = k.removesuffix("_std")
        a = dict(attrs[base]) if k == base else {
            "long_name": f"{ens.spread_meaning}, of {base}, gC m-2 d-1"}
        a["units"] = units
        a["cell_methods"] = "time: mean"
        if k != base:
            a.pop("standard_name", None)
        ds[k] = (("site", "time"), pred[k].astype(np.float64), a)
    ds["lat"] = ("site", data.lat, {"units": "degrees_north", "standard_name": "latitude"})
    ds["lon"] = ("site", data.lon, {"units": "degrees_east", "standard_name": "longitude"})
    ds["igbp"] = ("site", data.igbp.astype(str), {"long_name": "IGBP land-cover class"})
    for k in FIELDS:
        ds[k].attrs["coordinates"] = "lat lon site_name"
    ds.attrs = {
        "Conventions": "CF-1.8",
        "featureType": "timeSeries",
        "title": "TAM-RL ensemble carbon fluxes",
        "sign_convention": conv.value,
        "nee_formula": conv.formula,
        "nee_positive": conv.cf_positive,
        "period": ens.meta.period,
        "checkpoint": checkpoint,
        "checkpoint_trained_on": ens.meta.trained_on,
        "ensemble_members": ens.n_members,
        "spread_meaning": ens.spread_meaning,
        "input_data": str(data.source),
        "input_attribution": " ".join(filter(None, (data.attrs.get("license", ""), data.attrs.get("source", "")))),
        "history": "tamrl-coupler predict",
    }
    enc = {"time": {"units": "days since 2001-01-01", "calendar": "proleptic_gregorian", "dtype": "float64",
                    "_FillValue": None}}
    enc["time_bnds"] = {"units": "days since 2001-01-01", "calendar": "proleptic_gregorian", "dtype": "float64",
                        "_FillValue": None}
    enc.update({k: {"_FillValue": np.nan} for k in FIELDS})
    enc.update({k: {"dtype": "S1"} for k in ("site_name", "igbp")})
    with atomic_path(path, "predictions") as tmp:
        ds.to_netcdf(tmp, encoding=enc)
    return Path(path)
