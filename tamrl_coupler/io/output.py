"""CF-1.8 NetCDF flux files: gpp, reco, nee (and their ensemble spreads) on the host grid or a point set.

Every file states its sign convention (global attributes and NEE's ``positive``), its units, cell methods
(``time: mean area: mean where land``) and cell measures. CF standard names are used where the CF table has one
for the quantity in the chosen unit; total ecosystem respiration has none, so ``reco`` carries a long name only.
The file is written under a temporary name and renamed when closed, so an interrupted run never leaves a truncated
file under the final name and never damages a file written before.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tamrl_coupler import __version__
from tamrl_coupler.io.cfcoords import write_horizontal_coords
from tamrl_coupler.physics.carbon import SignConvention
from tamrl_coupler.physics.units import FluxUnit

FILL = np.float64(1.0e20)

LONG_NAMES = {
    "gpp": "gross primary productivity",
    "reco": "ecosystem respiration (autotrophic + heterotrophic)",
    "nee": "net ecosystem exchange",
    "gpp_spread": "ensemble spread (member standard deviation) of gross primary productivity",
    "reco_spread": "ensemble spread (member standard deviation) of ecosystem respiration",
    "nee_spread": "ensemble spread (member standard deviation) of net ecosystem exchange",
}

_NEP_NAME = ("surface_net_downward_mass_flux_of_carbon_dioxide_expressed_as_carbon_due_to_all_land_processes"
             "_excluding_anthropogenic_land_use_change")


def standard_name(field: str, unit: FluxUnit, convention: SignConvention) -> str | None:
    """The CF standard name of ``field`` in ``unit``/``convention``, or None when the CF table has none."""
    if field == "gpp" and unit.species == "carbon":
        return "gross_primary_productivity_of_biomass_expressed_as_carbon"
    if field == "nee":
        if unit.species == "carbon" and convention is SignConvention.UPTAKE_POSITIVE:
            return _NEP_NAME
        if unit.species == "mole":
            return ("surface_downward_mole_flux_of_carbon_dioxide" if convention is SignConvention.UPTAKE_POSITIVE
                    else "surface_upward_mole_flux_of_carbon_dioxide")
    return None


@dataclass
class HostGridInfo:
    """What the writer needs to know about the host grid (global, flat C order)."""

    kind: str  # "regular" | "points"
    lat: np.ndarray  # regular: 1-D centres (ny,); points: (n,)
    lon: np.ndarray
    lat_bounds: np.ndarray | None = None  # regular: (ny, 2)
    lon_bounds: np.ndarray | None = None
    site_names: list[str] | None = None

    @property
    def shape(self) -> tuple[int, ...]:
        return (self.lat.size, self.lon.size) if self.kind == "regular" else (self.lat.size,)

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))


class FluxFileWriter:
    """Appends one time record per call; ``close`` renames the finished file into place."""

    def __init__(self, path: str | Path, grid: HostGridInfo, landfrac: np.ndarray, area: np.ndarray | None,
                 unit: FluxUnit, convention: SignConvention, reference: np.datetime64,
                 fields: tuple[str, ...] = ("gpp", "reco", "nee", "gpp_spread", "reco_spread", "nee_spread"),
                 attrs: dict[str, str] | None = None, time_method: str = "mean"):
        import netCDF4

        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        self.grid = grid
        self.fields = fields
        self.land = np.asarray(landfrac, dtype=np.float64).reshape(grid.shape) > 0
        ds = self.ds = netCDF4.Dataset(self.tmp, "w", format="NETCDF4")
        ds.setncattr("Conventions", "CF-1.8")
        ds.setncattr("title", "TAM-RL carbon fluxes from tamrl-coupler")
        ds.setncattr("source", f"tamrl-coupler {__version__}: TAM-RL ensemble (task-aware modulated LSTM)")
        ds.setncattr("institution", "tamrl-coupler developers")
        ds.setncattr("sign_convention", convention.value)
        ds.setncattr("nee_definition", f"{convention.formula} (exact: NEE is recomputed from GPP and Reco on every "
                                       f"cell and step)")
        ds.setncattr("flux_unit", unit.name)
        ds.setncattr("flux_unit_description", unit.description)
        for k, v in (attrs or {}).items():
            ds.setncattr(k, v)
        ds.createDimension("time", None)
        ds.createDimension("nv", 2)
        t = ds.createVariable("time", "f8", ("time",))
        t.units = f"seconds since {str(reference).replace('T', ' ')}"
        t.calendar = "proleptic_gregorian"
        t.standard_name = "time"
        t.axis = "T"
        t.bounds = "time_bnds"
        ds.createVariable("time_bnds", "f8", ("time", "nv"))
        space, coords = write_horizontal_coords(ds, grid.kind, grid.lat, grid.lon, grid.lat_bounds,
                                                grid.lon_bounds, grid.site_names)
        lf = ds.createVariable("landfrac", "f8", space)
        lf.standard_name, lf.units, lf.long_name = "land_area_fraction", "1", "land fraction of the host cell"
        if coords:
            lf.coordinates = coords
        lf[:] = np.asarray(landfrac, dtype=np.float64).reshape(grid.shape)
        measures = None
        if area is not None:
            a = ds.createVariable("cell_area", "f8", space)
            a.standard_name, a.units, a.long_name = "cell_area", "m2", "area of the host cell"
            if coords:
                a.coordinates = coords
            a[:] = np.asarray(area, dtype=np.float64).reshape(grid.shape)
            measures = "area: cell_area"
        self.vars = {}
        for f in fields:
            v = ds.createVariable(f, "f8", ("time", *space), fill_value=FILL, zlib=True, complevel=1,
                                  chunksizes=(1, *grid.shape))
            v.units = unit.udunits
            v.long_name = LONG_NAMES[f] + (f" ({convention.formula})" if f == "nee" else "")
            std = standard_name(f, unit, convention)
            if std:
                v.standard_name = std
            if f == "nee":
                v.positive = convention.cf_positive
            v.cell_methods = f"time: {time_method} area: mean where land"
            if measures:
                v.cell_measures = measures
            if coords:
                v.coordinates = coords
            if not f.endswith("_spread"):
                v.ancillary_variables = f"{f}_spread" if f"{f}_spread" in fields else None
                if v.ancillary_variables is None:
                    v.delncattr("ancillary_variables")
            self.vars[f] = v
        self.n = 0

    def append(self, t0: float, t1: float, values: dict[str, np.ndarray]) -> None:
        """One record: the interval [t0, t1] (seconds since the reference) and flat global fields."""
        i = self.n
        self.ds.variables["time"][i] = 0.5 * (t0 + t1)
        self.ds.variables["time_bnds"][i, :] = (t0, t1)
        for f in self.fields:
            a = np.asarray(values[f], dtype=np.float64).reshape(self.grid.shape)
            self.vars[f][i] = np.where(self.land, a, FILL)
        self.n += 1

    def close(self) -> Path:
        self.ds.close()
        os.replace(self.tmp, self.path)
        return self.path

    def abort(self) -> None:
        try:
            self.ds.close()
        finally:
            if self.tmp.exists():
                self.tmp.unlink()
