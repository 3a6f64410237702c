"""The predictions file of ``tamrl-coupler predict``: the ensemble's fluxes and spreads over a dataset's sites as
CF discrete sampling geometry (timeSeries) NetCDF, NEE's direction stated."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from tamrl_coupler import vocabulary
from tamrl_coupler.atomicfile import atomic_path
from tamrl_coupler.data.dataset import FluxDataset
from tamrl_coupler.physics.carbon import SignConvention

if TYPE_CHECKING:
    from tamrl_coupler.model.ensemble import Ensemble


def write_predictions(pred: dict[str, np.ndarray], data: FluxDataset, ens: Ensemble, path: str | Path,
                      convention: SignConvention | str, checkpoint: str, extra_attrs: dict[str, str] | None = None
                      ) -> Path:
    """NetCDF with the ensemble's targets (gpp, reco, nee, ...) and their spreads (*_std) on (site, time), named and
    described by the vocabulary; NEE's direction in ``positive`` and global attributes (``extra_attrs``: the budget
    mode and global totals)."""
    import xarray as xr

    conv = SignConvention.parse(convention)
    fields = [k for k in ens.outputs.target_fields if k in pred]
    attrs = {}
    for t in ens.outputs.targets:
        q = vocabulary.TARGETS[t]
        attrs[t] = {"long_name": f"{q.long_name} (ensemble mean), {q.units}",
                    # grams of carbon (the standard names say 'expressed_as_carbon'): gC m-2 d-1
                    "units": "g m-2 d-1" if q.units == "gC m-2 d-1" else q.units}
        if q.standard_name:
            attrs[t]["standard_name"] = q.standard_name
        if q.derived_from:
            attrs[t]["comment"] = f"derived from {' and '.join(q.derived_from)} exactly"
    if "nee" in attrs:
        attrs["nee"].update({"long_name": f"{attrs['nee']['long_name']}, {conv.formula}", "positive": conv.cf_positive,
                             "comment": f"{conv.formula} exactly (derived from gpp and reco)"})
        if conv is SignConvention.UPTAKE_POSITIVE:
            attrs["nee"]["standard_name"] = vocabulary.EXPORTS["nee"].standard_name
    # CF discrete sampling geometry (timeSeries): sites along a plain dimension, names in a cf_role variable
    unit = {"daily": "D", "monthly": "M"}[data.period]
    start = np.asarray(data.time).astype(f"datetime64[{unit}]")
    bounds = np.stack([start, start + 1], axis=1).astype("datetime64[ns]")  # each value is its period's mean
    ds = xr.Dataset(coords={
        "time": ("time", data.time, {"standard_name": "time", "axis": "T", "bounds": "time_bnds"}),
        "site_name": ("site", data.sites.astype(str), {"cf_role": "timeseries_id", "long_name": "FLUXNET site id"})})
    ds["time_bnds"] = (("time", "nv"), bounds)
    for k in fields:
        base = k.removesuffix("_std")
        a = dict(attrs[base]) if k == base else {
            "long_name": f"{ens.spread_meaning}, of {base}, {vocabulary.TARGETS[base].units}",
            "units": attrs[base]["units"]}
        a["cell_methods"] = "time: mean"
        ds[k] = (("site", "time"), pred[k].astype(np.float64), a)
    ds["lat"] = ("site", data.lat, {"units": "degrees_north", "standard_name": "latitude"})
    ds["lon"] = ("site", data.lon, {"units": "degrees_east", "standard_name": "longitude"})
    ds["igbp"] = ("site", data.igbp.astype(str), {"long_name": "IGBP land-cover class"})
    for k in fields:
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
        **(extra_attrs or {}),  # the budget mode, global totals (commands/predict.py)
    }
    enc = {"time": {"units": "days since 2001-01-01", "calendar": "proleptic_gregorian", "dtype": "float64",
                    "_FillValue": None}}
    enc["time_bnds"] = {"units": "days since 2001-01-01", "calendar": "proleptic_gregorian", "dtype": "float64",
                        "_FillValue": None}
    enc.update({k: {"_FillValue": np.nan} for k in fields})
    enc.update({k: {"dtype": "S1"} for k in ("site_name", "igbp")})
    with atomic_path(path, "predictions") as tmp:
        ds.to_netcdf(tmp, encoding=enc)
    return Path(path)
