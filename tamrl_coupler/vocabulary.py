"""Every quantity the product knows, defined once: its name, CF standard name, canonical unit, valid range, how it
is regridded, the role it plays and the other names it is accepted under.

Why one place: a field used to be declared in about ten modules (component fields, unit tables, driver if-chains,
readers, the model's driver lists, writers, the Fortran host's name lists), each able to drift from the others.
Everything else is now driven by these tables: adding an import field, a model driver or an export is one entry
here plus the physics that makes it (``physics/drivers.py`` for a driver that is not a period mean, ``last`` value
or daily extreme of an import).

Roles:

* ``import``: a host field per coupling step, in SI units (K, Pa, W m-2, kg m-2 s-1 ...), validated against its
  physical range on the cells that matter before it reaches the model;
* ``driver``: a model input per model period, in the units the model was trained on (degC, hPa, MJ m-2 d-1 ...),
  made from imports by an aggregation rule;
* ``target``: what the model predicts and is trained on, period-mean rates: a target with a ``head`` is an output
  of the member networks (and a training target of that name in the data), one with ``derived_from`` is made from
  predicted ones by the physics (NEE = GPP - Reco, exactly);
* ``export``: what the component hands back to a host, one row per name (never by position): the ensemble output
  it ``carries``, or, with ``derived_from``, computed on the host cells from other exports by the physics
  (``physics/carbon.py`` EXPORT_DERIVATIONS).

The tables are read-only: a quantity is added here, in this file. ``extended()`` adds some for the length of a
``with`` block (tests, experiments) and leaves the tables as they were.

A categorical quantity (land cover) carries its ``classes``; its value is the class index, NaN when unknown.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from enum import Enum
from types import MappingProxyType

import numpy as np

from tamrl_coupler.errors import InputError


class Role(str, Enum):
    """What a quantity is to the product; see the module docstring."""

    IMPORT = "import"
    DRIVER = "driver"
    TARGET = "target"
    EXPORT = "export"


class Regrid(str, Enum):
    """How an import field goes from host to model cells."""

    STATE = "state"  # bilinear (conservative where no land host cell is in the stencil), land-mask normalised
    FLUX = "flux"  # conservative (destination-area weights), land-mask normalised
    CLASS = "class"  # the host cell with the largest land overlap


class Accumulation(str, Enum):
    """How a forcing file holds an amount (J m-2, m of water) whose import is a rate (W m-2, kg m-2 s-1): which
    interval each record's amount is over. Whether a field is an amount is read from its units; how it was
    accumulated is the file layout's (io/forcing_layouts.py); physics/accumulation.py turns it into the rate."""

    ENDING = "ending"  # over the record spacing ending at the time stamp (ERA5 hourly: the hour before)
    STARTING = "starting"  # over the record spacing starting at the time stamp (CRU-JRA: the next 6 hours)
    SINCE_00UTC = "since_00utc"  # from 00 UTC up to the stamp, restarting every day (ERA5-Land, ERA5 forecasts)
    BOUNDS = "bounds"  # over the record's CF time bounds (cell_methods "time: sum")


class Aggregate(str, Enum):
    """How coupling steps of an import become a driver's period value (physics/drivers.py implements each)."""

    MEAN = "mean"  # time mean over the period so far, converted to the driver's unit
    DAILY_MIN = "daily_min"  # mean over the period's days of each day's minimum
    DAILY_MAX = "daily_max"  # mean over the period's days of each day's maximum
    LAST = "last"  # the latest value (static classes)


class Head(str, Enum):
    """How a member network predicts a target (model/networks.py ``flux_heads``)."""

    POSITIVE = "positive"  # softplus(linear) * the target's scale: a rate that cannot be negative


# IGBP land-cover classes; a land-cover value is the class index in this tuple (NaN = unknown).
IGBP_CLASSES: tuple[str, ...] = (
    "ENF", "EBF", "DNF", "DBF", "MF", "CSH", "OSH", "WSA", "SAV", "GRA", "WET", "CRO", "URB", "CVM", "SNO", "BSV",
    "WAT",
)


@dataclass(frozen=True)
class Quantity:
    """One quantity in one role. Only ``name``, ``role``, ``units`` and ``long_name`` apply to every role."""

    name: str
    role: Role
    units: str  # the canonical unit: every value of this quantity inside the product (in this role) is in it
    long_name: str
    standard_name: str | None = None  # CF standard name; None where the CF table has none
    aliases: tuple[str, ...] = ()  # other names accepted for it (CF standard names are accepted too)
    valid_min: float = -math.inf  # physical range; values outside are errors naming field, rank, cell and step
    valid_max: float = math.inf
    hint: str = ""  # what an out-of-range value usually means (a unit mix-up)
    classes: tuple[str, ...] = ()  # categorical: the class codes, a value is the index
    water_equivalent: bool = False  # a depth (rate) of liquid water converts to it (mm d-1 -> kg m-2 s-1)
    # imports
    regrid: Regrid | None = None
    required: bool = False  # imports: a step needs it (registered, or derived); drivers: the model needs it
    # imports: computed from these imports when not registered; targets: from these predicted targets (the
    # balance, NEE = GPP - Reco in the sign convention); exports: from these exports on the host cells
    derived_from: tuple[str, ...] = ()
    also_derived_from: tuple[tuple[str, ...], ...] = ()  # imports: other sets it is computed from, in that order
    # drivers
    sources: tuple[str, ...] = ()  # imports it is made from, the first one registered wins
    aggregate: Aggregate | None = None
    periods: tuple[str, ...] = ("monthly", "daily")  # the model periods whose models take this driver
    # targets
    head: Head | None = None  # predicted by a head of the member networks; None: derived (derived_from)
    # exports
    carries: str | None = None  # the ensemble output an export carries (Fluxes field); None: derived on the host

    @property
    def categorical(self) -> bool:
        return bool(self.classes)

    def names(self) -> tuple[str, ...]:
        """Every name this quantity is accepted under."""
        return (self.name, *self.aliases, *((self.standard_name,) if self.standard_name else ()))

    def derivations(self) -> tuple[tuple[str, ...], ...]:
        """Every set of imports this import can be computed from, the preferred first."""
        return ((self.derived_from,) if self.derived_from else ()) + self.also_derived_from


_K_HINT = "values below 150 K usually mean degC was given where K is declared"

_TABLES: dict[Role, dict[str, Quantity]] = {role: {} for role in Role}
_ALIASES: dict[Role, dict[str, str]] = {role: {} for role in Role}
# read-only views of the tables, in definition order (what everything else reads)
IMPORTS: Mapping[str, Quantity] = MappingProxyType(_TABLES[Role.IMPORT])
DRIVERS: Mapping[str, Quantity] = MappingProxyType(_TABLES[Role.DRIVER])
TARGETS: Mapping[str, Quantity] = MappingProxyType(_TABLES[Role.TARGET])
EXPORTS: Mapping[str, Quantity] = MappingProxyType(_TABLES[Role.EXPORT])


def _define(q: Quantity) -> Quantity:
    """Add ``q`` to its role's table (this file's definitions, and :func:`extended`); a name or alias already
    taken in that role is an error."""
    table, aliases = _TABLES[q.role], _ALIASES[q.role]
    taken = [n for n in q.names() if n in table or n in aliases]
    if taken:
        raise InputError(f"{q.role.value} quantity {q.name!r}: name(s) {taken} are already defined")
    table[q.name] = q
    for n in q.names()[1:]:
        aliases[n] = q.name
    return q


@contextmanager
def extended(*quantities: Quantity) -> Iterator[tuple[Quantity, ...]]:
    """The vocabulary with ``quantities`` added, for the ``with`` block: what adding them to this file would do,
    tried at run time (tests, experiments). The tables are restored as they were when the block ends, also on an
    error; a name already taken is an error, and nothing is added then."""
    saved = {role: (dict(_TABLES[role]), dict(_ALIASES[role])) for role in Role}
    try:
        for q in quantities:
            _define(q)
        yield quantities
    finally:
        for role, (table, aliases) in saved.items():
            _TABLES[role].clear()
            _TABLES[role].update(table)
            _ALIASES[role].clear()
            _ALIASES[role].update(aliases)


def canonical_name(role: Role, name: str) -> str:
    """The quantity's name for ``name`` (its name, an alias or its CF standard name); an error lists what exists."""
    if name in _TABLES[role]:
        return name
    if name in _ALIASES[role]:
        return _ALIASES[role][name]
    raise InputError(f"{role.value} field {name!r} is not known; expected one of {sorted(_TABLES[role])} or their "
                     f"CF standard names")


def lookup(role: Role, name: str) -> Quantity:
    """The quantity ``name`` (a name, an alias or a CF standard name) stands for in ``role``."""
    return _TABLES[role][canonical_name(role, name)]


def accepted_names(role: Role) -> list[str]:
    """Every name accepted in ``role``: names, aliases and standard names."""
    return sorted(set(_TABLES[role]) | set(_ALIASES[role]))


def satisfiable(name: str, registered: set[str]) -> bool:
    """Whether import ``name`` is registered or can be derived from registered imports."""
    if name in registered:
        return True
    return any(all(satisfiable(d, registered) for d in src) for src in IMPORTS[name].derivations())


def missing_imports(registered: set[str]) -> list[str]:
    """Descriptions (``tas or tasmin+tasmax``) of the required imports ``registered`` cannot provide."""
    out = []
    for q in IMPORTS.values():
        if q.required and not satisfiable(q.name, registered):
            out.append(" or ".join([q.name, *("+".join(src) for src in q.derivations())]))
    return out


def required_drivers(period: str = "monthly") -> tuple[str, ...]:
    """The drivers every model of ``period`` needs, in the model's input order."""
    return tuple(n for n, q in DRIVERS.items() if q.required and period in q.periods)


def optional_drivers(period: str = "monthly") -> tuple[str, ...]:
    """The drivers a model of ``period`` may be trained with and run without (NaN: missing, masked by the model)."""
    return tuple(n for n, q in DRIVERS.items() if not q.required and period in q.periods)


def categorical_drivers() -> dict[str, int]:
    """Driver name -> number of classes, for the categorical drivers."""
    return {n: len(q.classes) for n, q in DRIVERS.items() if q.classes}


def carried_exports() -> tuple[Quantity, ...]:
    """The exports computed on model cells and regridded to the host (all but those derived on the host)."""
    return tuple(q for q in EXPORTS.values() if q.carries is not None)


def model_outputs() -> tuple[str, ...]:
    """The ensemble outputs the exports carry, in the exports' order (an ensemble's own rows:
    ``model.outputs.Outputs``)."""
    return tuple(q.carries for q in carried_exports() if q.carries is not None)


def predicted_targets() -> tuple[str, ...]:
    """The targets a member network can have a head for."""
    return tuple(n for n, q in TARGETS.items() if q.head is not None)


def derived_targets(heads: Iterable[str]) -> tuple[str, ...]:
    """The targets derived from the predicted targets ``heads`` (NEE when GPP and Reco are predicted)."""
    have = set(heads)
    return tuple(n for n, q in TARGETS.items() if q.head is None and q.derived_from and set(q.derived_from) <= have)


def igbp_index(codes: Iterable[str]) -> np.ndarray:
    """IGBP class codes -> float class indices (NaN for unknown codes, so that they count as missing)."""
    index = {c: float(i) for i, c in enumerate(IGBP_CLASSES)}
    return np.array([index.get(str(c).strip().upper(), np.nan) for c in codes], dtype=np.float64)


# --- imports: host fields per coupling step -----------------------------------------------------------------------
for _q in (
    Quantity("tas", Role.IMPORT, "K", "near-surface air temperature", "air_temperature", valid_min=150.0,
             valid_max=350.0, hint=_K_HINT, regrid=Regrid.STATE, required=True, derived_from=("tasmin", "tasmax")),
    Quantity("huss", Role.IMPORT, "kg kg-1", "near-surface specific humidity", "specific_humidity", valid_min=0.0,
             valid_max=0.1, hint="values above 0.1 usually mean g kg-1 was given", regrid=Regrid.STATE),
    Quantity("ps", Role.IMPORT, "Pa", "surface air pressure", "surface_air_pressure", valid_min=3.0e4,
             valid_max=1.2e5, hint="values near 1000 usually mean hPa was given", regrid=Regrid.STATE),
    # period-level alternatives (hosts coupling once per model period, e.g. the monthly FluxVal sites)
    # (CF names daily extremes air_temperature with cell methods; the aliases keep them apart here)
    Quantity("tasmin", Role.IMPORT, "K", "daily minimum near-surface air temperature",
             aliases=("air_temperature_daily_minimum",), valid_min=150.0, valid_max=350.0, hint=_K_HINT,
             regrid=Regrid.STATE),
    Quantity("tasmax", Role.IMPORT, "K", "daily maximum near-surface air temperature",
             aliases=("air_temperature_daily_maximum",), valid_min=150.0, valid_max=350.0, hint=_K_HINT,
             regrid=Regrid.STATE),
    Quantity("vpd", Role.IMPORT, "Pa", "vapour pressure deficit", "water_vapor_saturation_deficit_in_air",
             valid_min=0.0, valid_max=1.0e4, hint="vpd is imported in Pa; values above 1e4 are implausible",
             regrid=Regrid.STATE, required=True, derived_from=("tas", "huss", "ps"),
             also_derived_from=(("tas", "tdps"), ("tas", "hurs"))),
    Quantity("rsds", Role.IMPORT, "W m-2", "surface downwelling shortwave radiation",
             "surface_downwelling_shortwave_flux_in_air", aliases=("surface_downwelling_shortwave_flux",),
             valid_min=-1.0, valid_max=1500.0, regrid=Regrid.FLUX, required=True),
    Quantity("pr", Role.IMPORT, "kg m-2 s-1", "precipitation", "precipitation_flux", aliases=("precipitation",),
             valid_min=-1.0e-8, valid_max=0.1, hint="values above 0.1 usually mean mm/day or mm/h was given",
             water_equivalent=True, regrid=Regrid.FLUX, required=True),  # rounding negatives pass
    Quantity("rlds", Role.IMPORT, "W m-2", "surface downwelling longwave radiation",
             "surface_downwelling_longwave_flux_in_air", valid_min=0.0, valid_max=1000.0, regrid=Regrid.FLUX),
    Quantity("sfcWind", Role.IMPORT, "m s-1", "near-surface wind speed", "wind_speed", aliases=("wind",),
             valid_min=0.0, valid_max=100.0, regrid=Regrid.STATE, derived_from=("uas", "vas")),
    Quantity("co2", Role.IMPORT, "ppm", "atmospheric CO2 mole fraction", "mole_fraction_of_carbon_dioxide_in_air",
             aliases=("mole_fraction_of_carbon_dioxide",), valid_min=100.0, valid_max=5000.0,
             hint="co2 is imported in ppm (umol mol-1); values below 1 usually mean mol mol-1 was given",
             regrid=Regrid.STATE),
    Quantity("lai", Role.IMPORT, "m2 m-2", "leaf area index", "leaf_area_index", valid_min=0.0, valid_max=20.0,
             regrid=Regrid.STATE),
    Quantity("orog", Role.IMPORT, "m", "surface altitude above sea level", "surface_altitude",
             aliases=("surface_elevation",), valid_min=-500.0, valid_max=9000.0,
             hint="surface altitude is imported in m; values above 9000 usually mean another unit (geopotential "
                  "m2 s-2 must be divided by g first)", regrid=Regrid.STATE),
    Quantity("igbp", Role.IMPORT, "1", "IGBP land-cover class index", aliases=("landcover", "land_cover_class"),
             valid_min=0.0, valid_max=255.0, hint="IGBP class index as in IGBP_CLASSES", classes=IGBP_CLASSES,
             regrid=Regrid.CLASS),
    # the humidity and wind the forcing users have carries (ERA5 d2m, u10, v10; CMIP6 hurs, uas, vas; CRU-JRA
    # ugrd, vgrd): vpd and sfcWind are derived from them (physics/humidity.py)
    Quantity("tdps", Role.IMPORT, "K", "near-surface dew point temperature", "dew_point_temperature",
             valid_min=150.0, valid_max=350.0, hint=_K_HINT, regrid=Regrid.STATE),
    Quantity("hurs", Role.IMPORT, "%", "near-surface relative humidity", "relative_humidity", valid_min=0.0,
             valid_max=110.0, hint="values of at most 1 everywhere usually mean a fraction given with units '%'",
             regrid=Regrid.STATE),
    Quantity("uas", Role.IMPORT, "m s-1", "eastward near-surface wind", "eastward_wind", valid_min=-100.0,
             valid_max=100.0, regrid=Regrid.STATE),
    Quantity("vas", Role.IMPORT, "m s-1", "northward near-surface wind", "northward_wind", valid_min=-100.0,
             valid_max=100.0, regrid=Regrid.STATE),
):
    _define(_q)

# --- model drivers: period values, in the units the model was trained on -------------------------------------------
for _q in (
    Quantity("tmin", Role.DRIVER, "degC", "mean of daily minimum air temperature", required=True,
             sources=("tasmin", "tas"), aggregate=Aggregate.DAILY_MIN, periods=("monthly",)),
    Quantity("tmax", Role.DRIVER, "degC", "mean of daily maximum air temperature", required=True,
             sources=("tasmax", "tas"), aggregate=Aggregate.DAILY_MAX, periods=("monthly",)),
    # the daily model takes the day's mean air temperature (what FLUXNET DD files and hosts' daily means give)
    Quantity("tmean", Role.DRIVER, "degC", "mean air temperature", required=True, sources=("tas",),
             aggregate=Aggregate.MEAN, periods=("daily",)),
    Quantity("swdown", Role.DRIVER, "MJ m-2 d-1", "downwelling shortwave radiation", required=True,
             sources=("rsds",), aggregate=Aggregate.MEAN),
    Quantity("vpd", Role.DRIVER, "hPa", "vapour pressure deficit", required=True, sources=("vpd",),
             aggregate=Aggregate.MEAN),
    Quantity("precip", Role.DRIVER, "mm d-1", "precipitation", required=True, sources=("pr",),
             aggregate=Aggregate.MEAN, water_equivalent=True),
    Quantity("lai", Role.DRIVER, "m2 m-2", "leaf area index", sources=("lai",), aggregate=Aggregate.MEAN),
    Quantity("co2", Role.DRIVER, "ppm", "atmospheric CO2 mole fraction", sources=("co2",),
             aggregate=Aggregate.MEAN),
    Quantity("igbp", Role.DRIVER, "1", "IGBP land-cover class index", aliases=("landcover",), classes=IGBP_CLASSES,
             sources=("igbp",), aggregate=Aggregate.LAST),
    # optional daily meteorology (FLUXNET LW_IN_F, PA_F, WS_F; a host's rlds, ps, sfcWind)
    Quantity("lwdown", Role.DRIVER, "W m-2", "downwelling longwave radiation", sources=("rlds",),
             aggregate=Aggregate.MEAN, periods=("daily",)),
    Quantity("pressure", Role.DRIVER, "kPa", "surface air pressure", sources=("ps",), aggregate=Aggregate.MEAN,
             periods=("daily",)),
    Quantity("wind", Role.DRIVER, "m s-1", "near-surface wind speed", sources=("sfcWind",),
             aggregate=Aggregate.MEAN, periods=("daily",)),
    # static: the site's (cell's) elevation, what tells a mountain meadow from a lowland pasture at equal weather
    Quantity("elevation", Role.DRIVER, "m", "surface elevation above sea level", sources=("orog",),
             aggregate=Aggregate.MEAN, periods=("daily",)),
):
    _define(_q)

# --- targets: what the model predicts, period-mean rates ----------------------------------------------------------
for _q in (
    Quantity("gpp", Role.TARGET, "gC m-2 d-1", "gross primary productivity",
             "gross_primary_productivity_of_biomass_expressed_as_carbon", head=Head.POSITIVE),
    Quantity("reco", Role.TARGET, "gC m-2 d-1", "ecosystem respiration (autotrophic + heterotrophic)",
             head=Head.POSITIVE),
    Quantity("nee", Role.TARGET, "gC m-2 d-1", "net ecosystem exchange", derived_from=("gpp", "reco")),
):
    _define(_q)

# --- exports: what the component writes into the host's arrays, per coupling step ---------------------------------
_NEP = ("surface_net_downward_mass_flux_of_carbon_dioxide_expressed_as_carbon_due_to_all_land_processes_excluding_"
        "anthropogenic_land_use_change")
for _q in (
    Quantity("gpp", Role.EXPORT, "gC m-2 d-1", "gross primary productivity",
             "gross_primary_productivity_of_biomass_expressed_as_carbon", carries="gpp"),
    Quantity("reco", Role.EXPORT, "gC m-2 d-1", "ecosystem respiration (autotrophic + heterotrophic)",
             aliases=("ecosystem_respiration_carbon_flux",), carries="reco"),  # no CF standard name exists
    Quantity("nee", Role.EXPORT, "gC m-2 d-1", "net ecosystem exchange", _NEP,
             derived_from=("gpp", "reco")),  # on the host cells, from the exported GPP and Reco, exactly
    Quantity("gpp_spread", Role.EXPORT, "gC m-2 d-1",
             "spread of gross primary productivity (the checkpoint's spread_meaning: calibrated predictive standard "
             "deviation, or member standard deviation)", carries="gpp_std"),
    Quantity("reco_spread", Role.EXPORT, "gC m-2 d-1",
             "spread of ecosystem respiration (the checkpoint's spread_meaning: calibrated predictive standard "
             "deviation, or member standard deviation)", carries="reco_std"),
    Quantity("nee_spread", Role.EXPORT, "gC m-2 d-1",
             "spread of net ecosystem exchange (the checkpoint's spread_meaning: calibrated predictive standard "
             "deviation, or member standard deviation)", carries="nee_std"),
):
    _define(_q)
del _q

