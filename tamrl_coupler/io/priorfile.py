"""Inversion prior files: NEE and its 1-sigma uncertainty in mol CO2 m-2 s-1, positive to the atmosphere, per m2
of grid cell, as time means over windows (what CarbonTracker, CAMS and OCO-2 MIP systems read)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from tamrl_coupler.io.cfcoords import HostGridInfo, write_horizontal_coords
from tamrl_coupler.ncfiles import write_atomic_netcdf


def write_prior_file(path: Path, info: HostGridInfo, bounds: np.ndarray, tunits: str, mean: np.ndarray,
                     sd: np.ndarray, frequency: str, source: str, extra_attrs: dict[str, str] | None = None) -> Path:
    """``bounds`` (W, 2) window bounds in ``tunits``; ``mean``/``sd`` (W, cells) on ``info``'s grid, written
    atomically. ``extra_attrs``: further global attributes (the budget mode and the global totals)."""
    n_w = bounds.shape[0]

    def fill(ds: Any) -> None:
        ds.setncattr("Conventions", "CF-1.8")
        ds.setncattr("title", f"TAM-RL NEE prior ({frequency} means) for atmospheric inversions")
        ds.setncattr("source", f"tamrl-coupler, from {source}")
        ds.setncattr("frequency", frequency)
        ds.setncattr("sign_convention", "atmosphere_positive")
        ds.setncattr("nee_definition", "NEE = Reco - GPP, positive to the atmosphere, per m2 of grid cell "
                                       "(land flux times land fraction)")
        ds.setncattr("uncertainty_definition", "ensemble spread (member standard deviation), time mean of the "
                                               "spreads within each window")
        for key, value in (extra_attrs or {}).items():
            ds.setncattr(key, value)
        ds.createDimension("time", n_w)
        ds.createDimension("nv", 2)
        t = ds.createVariable("time", "f8", ("time",))
        t.units, t.calendar, t.standard_name, t.axis, t.bounds = (tunits, "proleptic_gregorian", "time", "T",
                                                                  "time_bnds")
        t[:] = bounds.mean(axis=1)
        ds.createVariable("time_bnds", "f8", ("time", "nv"))[:] = bounds
        space, coords = write_horizontal_coords(ds, info)
        shape = (n_w, *info.shape)
        for name, data, std, long in (
                ("nee", mean, "surface_upward_mole_flux_of_carbon_dioxide",
                 "net ecosystem exchange prior (Reco - GPP), per m2 of grid cell"),
                ("nee_uncertainty", sd, "surface_upward_mole_flux_of_carbon_dioxide standard_error",
                 "1-sigma uncertainty of the NEE prior (TAM-RL ensemble spread)")):
            v = ds.createVariable(name, "f8", ("time", *space), zlib=True, complevel=1)
            v.units = "mol m-2 s-1"
            v.standard_name = std
            v.long_name = long
            if name == "nee":
                v.positive = "up"
            v.cell_methods = "time: mean area: mean"
            if coords:
                v.coordinates = coords
            v[:] = np.asarray(data).reshape(shape)

    return write_atomic_netcdf(path, fill)
