"""Inversion prior files: NEE and its 1-sigma uncertainty in mol CO2 m-2 s-1, positive to the atmosphere, per m2
of grid cell, as time means over windows (what CarbonTracker, CAMS and OCO-2 MIP systems read).

The layout (CF-1.8 and ACDD-1.3): ``nee`` and ``nee_uncertainty`` (its ``ancillary_variables``), the grid's
``cell_area`` (its ``cell_measures``) and ``landfrac`` (the land fraction the fluxes were multiplied by), time
bounds, lat/lon bounds. What the uncertainty is and how its errors are correlated in time and space are attributes
of ``nee_uncertainty``; the checkpoint's identity, provenance, licence and dates are global attributes. They are
made by ``products/prior_metadata.py``; this module writes whatever it is given, with ``flux_unit`` and
``sign_convention`` always stated, so that ``open_fluxes`` reads a prior file as it reads a flux file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from tamrl_coupler.io.cfcoords import HostGridInfo, write_horizontal_coords
from tamrl_coupler.ncfiles import write_atomic_netcdf

PRIOR_FLUX_UNIT = "molCO2 m-2 s-1"  # the export unit's config name (open_fluxes reads it)
PRIOR_UNITS = "mol m-2 s-1"


def write_prior_file(path: Path, info: HostGridInfo, bounds: np.ndarray, tunits: str, mean: np.ndarray,
                     sd: np.ndarray, frequency: str, source: str, *, landfrac: np.ndarray | None = None,
                     cell_area: np.ndarray | None = None, attributes: dict[str, Any] | None = None,
                     uncertainty_attributes: dict[str, Any] | None = None) -> Path:
    """``bounds`` (W, 2) window bounds in ``tunits``; ``mean``/``sd`` (W, cells) on ``info``'s grid; ``landfrac``
    and ``cell_area`` (m2) per cell; ``attributes`` global and ``uncertainty_attributes`` for ``nee_uncertainty``
    (numbers stay numbers); written atomically."""
    n_w = bounds.shape[0]
    given = dict(attributes or {})

    def fill(ds: Any) -> None:
        base = {
            "Conventions": "CF-1.8, ACDD-1.3",
            "title": f"TAM-RL NEE prior ({frequency} means) for atmospheric inversions",
            "source": f"tamrl-coupler, from {source}",
            "frequency": frequency,
            "sign_convention": "atmosphere_positive",
            "nee_definition": "NEE = Reco - GPP, positive to the atmosphere, per m2 of grid cell (land flux times "
                              "land fraction)",
            "flux_unit": PRIOR_FLUX_UNIT,
            "flux_unit_description": "moles of CO2 per m2 of grid cell per second",
        }
        for k, v in {**base, **given}.items():
            ds.setncattr(k, v)
        ds.createDimension("time", n_w)
        ds.createDimension("nv", 2)
        t = ds.createVariable("time", "f8", ("time",))
        t.units, t.calendar, t.standard_name, t.axis, t.bounds = (tunits, "proleptic_gregorian", "time", "T",
                                                                  "time_bnds")
        t[:] = bounds.mean(axis=1)
        ds.createVariable("time_bnds", "f8", ("time", "nv"))[:] = bounds
        space, coords = write_horizontal_coords(ds, info)
        measures = None
        for name, data, std, units, long in (
                ("landfrac", landfrac, "land_area_fraction", "1",
                 "land fraction of the cell (the land fluxes are multiplied by it)"),
                ("cell_area", cell_area, "cell_area", "m2", "area of the grid cell")):
            if data is None:
                continue
            v = ds.createVariable(name, "f8", space)
            v.standard_name, v.units, v.long_name = std, units, long
            if coords:
                v.coordinates = coords
            v[:] = np.asarray(data, dtype=np.float64).reshape(info.shape)
            if name == "cell_area":
                measures = "area: cell_area"
        shape = (n_w, *info.shape)
        unc = {"long_name": "1-sigma uncertainty of the NEE prior", **(uncertainty_attributes or {})}
        for name, data, std, extra in (
                ("nee", mean, "surface_upward_mole_flux_of_carbon_dioxide",
                 {"long_name": "net ecosystem exchange prior (Reco - GPP), per m2 of grid cell", "positive": "up",
                  "ancillary_variables": "nee_uncertainty"}),
                ("nee_uncertainty", sd, "surface_upward_mole_flux_of_carbon_dioxide standard_error", unc)):
            v = ds.createVariable(name, "f8", ("time", *space), zlib=True, complevel=1)
            v.units = PRIOR_UNITS
            v.standard_name = std
            v.cell_methods = "time: mean area: mean"
            if measures:
                v.cell_measures = measures
            if coords:
                v.coordinates = coords
            for k, val in extra.items():
                v.setncattr(k, val)
            v[:] = np.asarray(data).reshape(shape)

    return write_atomic_netcdf(path, fill)
