"""CF-1.8 NetCDF flux files: gpp, reco, nee (and their spreads: the file's spread_meaning says what they are) on the
host grid or a point set; the writer the offline driver appends to every coupling step, and the reader every product
made from a run uses.

Every file states its sign convention (global attributes and NEE's ``positive``), its units, cell methods
(``time: mean area: mean where land``) and cell measures. CF standard names are used where the CF table has one
for the quantity in the chosen unit; total ecosystem respiration has none, so ``reco`` carries a long name only.
The file is written under a temporary name and renamed when closed, so an interrupted run never leaves a truncated
file under the final name and never damages a file written before.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tamrl_coupler import __version__, vocabulary
from tamrl_coupler.atomicfile import raise_as_output_error
from tamrl_coupler.errors import InputError
from tamrl_coupler.io.cfcoords import HostGridInfo, read_horizontal_coords, write_horizontal_coords
from tamrl_coupler.ncfiles import AtomicNetCDF, open_netcdf, parse_time_units
from tamrl_coupler.physics.carbon import SignConvention
from tamrl_coupler.physics.totals import PG, TotalsAccumulator, exact_sums, totals_attributes
from tamrl_coupler.physics.units import CARBON_FLUX_UNIT, FluxUnit, flux_unit

FILL = np.float64(1.0e20)


def long_name(field: str, convention: SignConvention) -> str:
    """The export's long name, NEE's with the formula of ``convention``."""
    text = vocabulary.EXPORTS[field].long_name
    return text + (f" ({convention.formula})" if field == "nee" else "")


def standard_name(field: str, unit: FluxUnit, convention: SignConvention) -> str | None:
    """The CF standard name of ``field`` in ``unit``/``convention``, or None when the CF table has none.

    The vocabulary's names are for carbon mass, NEE uptake-positive; mole units have their own CO2 names. An export
    that is no carbon flux has its vocabulary standard name."""
    q = vocabulary.EXPORTS[field]
    if q.units != CARBON_FLUX_UNIT:
        return q.standard_name
    if field == "gpp" and unit.species == "carbon":
        return vocabulary.EXPORTS["gpp"].standard_name
    if field == "nee":
        if unit.species == "carbon" and convention is SignConvention.UPTAKE_POSITIVE:
            return vocabulary.EXPORTS["nee"].standard_name
        if unit.species == "mole":
            return ("surface_downward_mole_flux_of_carbon_dioxide" if convention is SignConvention.UPTAKE_POSITIVE
                    else "surface_upward_mole_flux_of_carbon_dioxide")
    return None


def file_attributes(unit: FluxUnit, convention: SignConvention) -> dict[str, str]:
    """The global attributes of every flux file, whoever writes it (this writer, or a Fortran host through the
    bridge: ``examples/fortran_host`` gets them in its namelist)."""
    return {
        "Conventions": "CF-1.8",
        "title": "TAM-RL carbon fluxes from tamrl-coupler",
        "source": f"tamrl-coupler {__version__}: TAM-RL ensemble (task-aware modulated LSTM)",
        "institution": "tamrl-coupler developers",
        "sign_convention": convention.value,
        "nee_definition": f"{convention.formula} (exact: NEE is recomputed from GPP and Reco on every cell and step)",
        "flux_unit": unit.name,
        "flux_unit_description": unit.description,
    }


def field_attributes(field: str, unit: FluxUnit, convention: SignConvention, fields: tuple[str, ...],
                     time_method: str = "mean", measures: str | None = "area: cell_area",
                     coordinates: str | None = None, spread_meaning: str = "") -> dict[str, str]:
    """The attributes of flux ``field`` in a file holding ``fields``: units, long and standard name, NEE's
    ``positive``, cell methods and measures, and its spread as ``ancillary_variables``."""
    own = vocabulary.EXPORTS[field].units
    out = {"units": unit.udunits if own == CARBON_FLUX_UNIT else own, "long_name": long_name(field, convention)}
    std = standard_name(field, unit, convention)
    if std:
        out["standard_name"] = std
    if field == "nee":
        out["positive"] = convention.cf_positive
    out["cell_methods"] = f"time: {time_method} area: mean where land"
    if measures:
        out["cell_measures"] = measures
    if coordinates:
        out["coordinates"] = coordinates
    if f"{field}_spread" in fields:
        out["ancillary_variables"] = f"{field}_spread"
    if field.endswith("_spread") and spread_meaning:  # what the spread is, in the variable itself
        out["long_name"] = f"{spread_meaning}, of {long_name(field.removesuffix('_spread'), convention)}"
    return out


class FluxFileWriter:
    """Appends one time record per call; ``close`` renames the finished file into place."""

    def __init__(self, path: str | Path, grid: HostGridInfo, landfrac: np.ndarray, area: np.ndarray | None,
                 unit: FluxUnit, convention: SignConvention, reference: np.datetime64,
                 fields: tuple[str, ...] | None = None, attrs: dict[str, str] | None = None,
                 time_method: str = "mean"):
        self.file = AtomicNetCDF(path, "flux file")
        self.path = self.file.path
        try:
            self._create(grid, landfrac, area, unit, convention, reference, fields, attrs, time_method)
        except BaseException as exc:
            self.file.abort()
            raise_as_output_error(exc, self.path, "flux file")

    def _create(self, grid: HostGridInfo, landfrac: np.ndarray, area: np.ndarray | None, unit: FluxUnit,
                convention: SignConvention, reference: np.datetime64, fields: tuple[str, ...] | None,
                attrs: dict[str, str] | None, time_method: str) -> None:
        self.grid = grid
        self._reference = reference
        self.fields = tuple(vocabulary.EXPORTS) if fields is None else fields
        self.land = np.asarray(landfrac, dtype=np.float64).reshape(grid.shape) > 0
        ds = self.ds = self.file.ds
        for k, v in {**file_attributes(unit, convention), **(attrs or {})}.items():
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
        space, coords = write_horizontal_coords(ds, grid)
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
        for f in self.fields:
            v = ds.createVariable(f, "f8", ("time", *space), fill_value=FILL, zlib=True, complevel=1,
                                  chunksizes=(1, *grid.shape))
            v.setncatts(field_attributes(f, unit, convention, self.fields, time_method, measures, coords,
                                         (attrs or {}).get("spread_meaning", "")))
            self.vars[f] = v
        self.n = 0
        self.totals = self._create_totals(grid, landfrac, area, unit, convention)

    def _create_totals(self, grid: HostGridInfo, landfrac: np.ndarray, area: np.ndarray | None, unit: FluxUnit,
                       convention: SignConvention) -> TotalsAccumulator | None:
        """Global totals of every record (variables ``total_<flux>(time)``, PgC over the record) and per month and
        year (attributes, with latitude bands and spreads: physics/totals.py); none without cell areas."""
        if area is None or not all(f in self.fields for f in ("gpp", "reco", "nee")):
            return None
        lat = np.repeat(grid.lat, grid.lon.size) if grid.kind == "regular" else grid.lat
        self._to_gc = 1.0 / unit.factor  # the file's unit -> gC m-2 d-1
        for f in ("gpp", "reco", "nee"):
            v = self.ds.createVariable(f"total_{f}", "f8", ("time",))
            v.units = "Pg"  # of carbon
            v.long_name = (f"global total of {long_name(f, convention)} over the record's step, land-fraction "
                           "weighted, petagrams of carbon (the monthly and annual totals in the global attributes "
                           "count every step, written or not)")
        return TotalsAccumulator(np.asarray(area, dtype=np.float64).ravel() * np.asarray(landfrac).ravel(), lat,
                                 convention.formula)

    def append(self, t0: float, t1: float, values: dict[str, np.ndarray]) -> None:
        """One record: the interval [t0, t1] (seconds since the reference) and flat global fields; a failed write
        (a full disk) is an OutputError naming the file."""
        try:
            self._append(t0, t1, values)
        except BaseException as exc:
            raise_as_output_error(exc, self.path, "flux file")

    def _append(self, t0: float, t1: float, values: dict[str, np.ndarray]) -> None:
        i = self.n
        self.ds.variables["time"][i] = 0.5 * (t0 + t1)
        self.ds.variables["time_bnds"][i, :] = (t0, t1)
        for f in self.fields:
            a = np.asarray(values[f], dtype=np.float64).reshape(self.grid.shape)
            self.vars[f][i] = np.where(self.land, a, FILL)
        if self.totals is not None:
            w = self.totals.w
            for f in ("gpp", "reco", "nee"):
                g = np.asarray(values[f], dtype=np.float64).ravel() * self._to_gc * w * ((t1 - t0) / 86400.0)
                self.ds.variables[f"total_{f}"][i] = exact_sums(np.nan_to_num(g))[0] / PG
        self.n += 1

    def count(self, t0: float, t1: float, values: dict[str, np.ndarray]) -> None:
        """One coupling step into the monthly and annual global totals (every step, written or not)."""
        if self.totals is None:
            return
        start = np.datetime64(self._reference, "s") + np.timedelta64(int(round(t0)), "s")
        fl = {f: np.asarray(values[f], dtype=np.float64).ravel() * self._to_gc for f in ("gpp", "reco", "nee")}
        sp = {f: np.asarray(values[f"{f}_spread"], dtype=np.float64).ravel() * self._to_gc
              for f in ("gpp", "reco", "nee") if f"{f}_spread" in self.fields}
        self.totals.add(start, (t1 - t0) / 86400.0, fl, sp)

    def set_attributes(self, attrs: dict[str, str]) -> None:
        """Global attributes known only at the end of a run (e.g. the fill policy's substitutions)."""
        for k, v in attrs.items():
            self.ds.setncattr(k, v)

    def close(self) -> Path:
        if self.totals is not None and self.totals.labels:
            self.set_attributes(totals_attributes(self.totals))
        return self.file.close()

    def abort(self) -> None:
        self.file.abort()


@dataclass
class FluxFile:
    """A flux file read back: fields as float64 with NaN off land, the time axis in seconds since ``reference``."""

    path: Path
    unit: FluxUnit
    convention: SignConvention
    reference: np.datetime64  # the time origin (the run's reference date)
    time_units: str
    bounds: np.ndarray  # (T, 2) seconds since the reference: each record's interval
    grid: HostGridInfo
    landfrac: np.ndarray  # grid shape
    fields: dict[str, np.ndarray]  # name -> (T, *grid.shape)
    area: np.ndarray | None = None  # m2, grid shape (None when the file has no cell_area)
    attrs: dict[str, str] = field(default_factory=dict)  # the file's global attributes (provenance for products)

    @property
    def starts(self) -> np.ndarray:
        """Each record's start as datetime64[s]."""
        return self.reference + self.bounds[:, 0].astype(np.int64).astype("timedelta64[s]")


def flux_file_metadata(attrs: dict, where: str) -> tuple[FluxUnit, SignConvention]:
    """The unit and sign convention a flux file states in its global attributes; an error naming the file and the
    attribute when it does not (a file this product did not write, or one that lost them)."""
    found = {}
    for key in ("flux_unit", "sign_convention"):
        if key not in attrs:
            raise InputError(f"{where}: global attribute {key!r} is missing; a tamrl-coupler flux file states its "
                             "flux unit and NEE sign convention")
        found[key] = attrs[key]
    try:
        return flux_unit(str(found["flux_unit"])), SignConvention.parse(str(found["sign_convention"]))
    except ValueError as exc:
        raise InputError(f"{where}: {exc}") from None


def flux_file_totals(ff: FluxFile) -> TotalsAccumulator | None:
    """The global totals of a flux file read with gpp, reco, nee (and spreads, when read), per record; None without
    cell areas."""
    if ff.area is None or not all(f in ff.fields for f in ("gpp", "reco", "nee")):
        return None
    grid = ff.grid
    lat = np.repeat(grid.lat, grid.lon.size) if grid.kind == "regular" else grid.lat
    acc = TotalsAccumulator(ff.area.ravel() * ff.landfrac.ravel(), lat, ff.convention.formula)
    to_gc = 1.0 / ff.unit.factor
    for i, start in enumerate(ff.starts):
        days = (ff.bounds[i, 1] - ff.bounds[i, 0]) / 86400.0
        fl = {f: ff.fields[f][i].ravel() * to_gc for f in ("gpp", "reco", "nee")}
        sp = {f: ff.fields[f"{f}_spread"][i].ravel() * to_gc for f in ("gpp", "reco", "nee")
              if f"{f}_spread" in ff.fields}
        acc.add(start, days, fl, sp)
    return acc


def read_flux_file(path: str | Path, fields: tuple[str, ...] | None = None) -> FluxFile:
    """Read a file :class:`FluxFileWriter` wrote (``fields``: default every export it holds)."""
    path = Path(path)
    with open_netcdf(path, "flux file") as ds:
        where = f"flux file {path}"
        unit, convention = flux_file_metadata({k: ds.getncattr(k) for k in ds.ncattrs()}, where)
        scale, reference = parse_time_units(ds["time"].units, where)
        bounds = np.asarray(ds["time_bnds"][:], dtype=np.float64) * scale
        names = [f for f in vocabulary.EXPORTS if f in ds.variables] if fields is None else list(fields)
        missing = [f for f in names if f not in ds.variables]
        if missing:
            raise InputError(f"{where}: variable(s) {missing} are missing")
        data = {f: np.ma.filled(ds[f][:].astype(np.float64), np.nan) for f in names}
        area = np.asarray(ds["cell_area"][:], dtype=np.float64) if "cell_area" in ds.variables else None
        return FluxFile(path, unit, convention, reference, ds["time"].units, bounds, read_horizontal_coords(ds),
                        np.asarray(ds["landfrac"][:], dtype=np.float64), data, area,
                        {k: str(ds.getncattr(k)) for k in ds.ncattrs()})
