"""Units of the fluxes the component exports and of the forcing it imports, converted by a units library.

Every conversion factor comes from cf_xarray's pint registry (``cf_xarray.units``): a maintained, pure-Python units
library that reads UDUNITS/CF unit strings (``W m-2``, ``W/m^2``, ``kg m-2 s-1``, ``degC``, ``1``, ``%`` ...). It
was chosen over ``cfunits`` (the real UDUNITS-2 through its C library) because it installs from wheels on any HPC
system without ``libudunits2``, and because the xarray side of the product (cf_xarray) already depends on it; the
CF strings forcing files carry are all understood by both (``tests/physics/test_units.py`` checks each one).

Inside the product fluxes are gC m-2 d-1 (what the model was trained on). Hosts want SI rates: CLM/CTSM's
``Fall_fco2_lnd`` is kg CO2 m-2 s-1, land models report kg C m-2 s-1, atmospheric inversions want mol CO2 m-2 s-1.
The units library does the arithmetic; the chemistry it cannot know is stated here (the molar masses of carbon and
CO2). Conversions are pure multiplications by one factor, so the carbon balance identity survives them exactly when
NEE is recomputed after conversion (the component does that).

Every other quantity has one canonical unit, declared in :mod:`tamrl_coupler.vocabulary`. A depth or a depth rate
of liquid water (``mm``, ``mm d-1``) is a mass per area only through the density of water: that conversion is
allowed only for quantities the vocabulary declares ``water_equivalent`` (precipitation), never guessed for others.
Incompatible units are an error naming the variable and both units.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np

from tamrl_coupler import vocabulary
from tamrl_coupler.constants import M_C, M_CO2, RHO_WATER
from tamrl_coupler.errors import InputError

ArrayT = TypeVar("ArrayT")  # a numpy array or a torch tensor

WATER_EQUIVALENT = "tamrl_water_equivalent"  # the pint context: liquid water depth <-> mass per area
_SCALED = re.compile(r"^\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*(.*)$")  # UDUNITS "1e-6", "1e3 m"


class _DropRedefinitions(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Redefining ")


@contextlib.contextmanager
def _quiet_redefinitions() -> Iterator[None]:
    """cf_xarray redefines a dozen of pint's units on purpose (percent, year, C, ...), and pint logs each as a
    warning: noise in every command's output that says nothing about the run. Dropped while the registry loads."""
    logger = logging.getLogger("pint.util")
    drop = _DropRedefinitions()
    logger.addFilter(drop)
    try:
        yield
    finally:
        logger.removeFilter(drop)


@functools.cache
def registry() -> Any:
    """The units library's registry (cf_xarray's pint registry), with the water-equivalent context added once.

    Built on first use (about a second), so that commands which convert nothing do not pay for it."""
    import pint

    with _quiet_redefinitions():
        from cf_xarray.units import units as ureg

    if WATER_EQUIVALENT not in ureg._contexts:
        ctx = pint.Context(WATER_EQUIVALENT)
        rho = ureg.Quantity(RHO_WATER, "kg m-3")
        for depth in ("[length]", "[length] / [time]"):
            mass = "[mass] / [length] ** 2" + depth[len("[length]"):]
            ctx.add_transformation(depth, mass, lambda _, x: x * rho)
            ctx.add_transformation(mass, depth, lambda _, x: x / rho)
        ureg.add_context(ctx)
    return ureg


def parse_units(text: str, where: str) -> Any:
    """``text`` as a pint Quantity of magnitude one unit (``1e-6``: a scaled dimensionless unit, as UDUNITS has it);
    an error naming ``where`` when the units library does not know it."""
    import pint

    ureg = registry()
    s = str(text).strip()
    try:
        return ureg.Quantity(1.0, ureg.Unit(s))
    except ValueError as exc:  # pint: "Unit expression cannot have a scaling factor"
        m = _SCALED.match(s)
        if m is None or "scaling factor" not in str(exc):
            raise InputError(f"{where}: units {text!r} are not a UDUNITS/CF unit string ({exc})") from None
        try:
            return ureg.Quantity(float(m.group(1)), ureg.Unit(m.group(2) or "1"))
        except (pint.PintError, ValueError, AttributeError) as inner:
            raise InputError(f"{where}: units {text!r} are not a UDUNITS/CF unit string ({inner})") from None
    except (pint.PintError, AttributeError, TypeError) as exc:
        raise InputError(f"{where}: units {text!r} are not a UDUNITS/CF unit string ({exc})") from None
    except Exception as exc:  # noqa: BLE001  # pint's parser on odd strings: TokenError, ZeroDivisionError, ...
        raise InputError(f"{where}: units {text!r} are not a UDUNITS/CF unit string (the units library cannot parse "
                         f"them: {type(exc).__name__}{': ' + str(exc) if str(exc) else ''})") from None


@dataclass(frozen=True)
class ScalarConversion:
    """value_target = value * scale + offset."""

    scale: float = 1.0
    offset: float = 0.0

    def apply(self, x: np.ndarray) -> np.ndarray:
        """Into the target unit (``x`` itself when nothing changes)."""
        if self.scale == 1.0 and self.offset == 0.0:
            return x
        return x * self.scale + self.offset

    def inverse(self) -> ScalarConversion:
        """target -> source."""
        return ScalarConversion(1.0 / self.scale, -self.offset / self.scale)


_SAME = ScalarConversion()


def _same_text(a: str, b: str) -> bool:
    return " ".join(str(a).split()) == " ".join(str(b).split())


@functools.lru_cache(maxsize=512)
def _affine(src: str, dst: str, water: bool) -> tuple[float, float] | str:
    """(scale, offset) of ``src`` -> ``dst`` from the units library, or the reason they do not convert."""
    import pint

    a, b = parse_units(src, "units"), parse_units(dst, "units")
    contexts = (WATER_EQUIVALENT,) if water else ()
    try:
        if a.magnitude != 1.0 or b.magnitude != 1.0:  # scaled dimensionless units ("1e-6"): multiplicative only
            return float(a.to(b.units, *contexts).magnitude / b.magnitude), 0.0
        values = registry().Quantity(np.array([0.0, 1.0]), a.units).to(b.units, *contexts).magnitude
    except pint.DimensionalityError:
        return f"{a.dimensionality} is not {b.dimensionality}"
    offset = float(values[0])
    # offset == 0: the library's factor itself; offset units (degC): the difference of two exact conversions
    return (float(values[1]) if offset == 0.0 else float(values[1] - values[0])), offset


def conversion(units: str, target: str, where: str, field: str, water_equivalent: bool = False) -> ScalarConversion:
    """The conversion of ``field`` from ``units`` into ``target``; an error naming ``where``, ``field`` and both units
    when the units library does not know ``units`` or they are incompatible."""
    if _same_text(units, target):
        return _SAME
    try:
        result = _affine(" ".join(str(units).split()), " ".join(str(target).split()), water_equivalent)
    except InputError as exc:
        raise InputError(f"{where}: field {field!r} has units {units!r} (expected {target!r}): "
                         f"{str(exc).split(': ', 1)[1]}") from None
    if isinstance(result, str):
        hint = ""
        if not water_equivalent and not isinstance(_affine(" ".join(str(units).split()), " ".join(target.split()),
                                                           True), str):
            hint = "; a depth of water is a mass per area only for a quantity declared water-equivalent"
        raise InputError(f"{where}: field {field!r} has units {units!r}, which do not convert to {target!r} "
                         f"({result}{hint})")
    scale, offset = result
    if not (math.isfinite(scale) and scale > 0 and math.isfinite(offset)):
        raise InputError(f"{where}: field {field!r} has units {units!r}, which would scale its values by {scale:g}: "
                         f"not a unit (a number such as '0' or '-1' in the units attribute?)")
    return _SAME if (scale, offset) == (1.0, 0.0) else ScalarConversion(scale, offset)


def to_canonical(canonical: str, units: str | None, where: str, field: str,
                 water_equivalent: bool = False) -> ScalarConversion:
    """The conversion from ``units`` into ``canonical``; a clear error naming ``where`` and ``field`` otherwise.

    ``units`` None (a variable without a units attribute) is accepted only for a dimensionless canonical unit (class
    indices, fractions); anything else would be a guess."""
    if units is None:
        if parse_units(canonical, where).dimensionless:
            return _SAME
        raise InputError(f"{where}: field {field!r} has no units attribute; expected {canonical!r} or units that "
                         "convert to it")
    return conversion(units, canonical, where, field, water_equivalent)


def import_conversion(field: str, units: str | None, where: str) -> ScalarConversion:
    """The conversion from ``units`` to import ``field``'s canonical unit (from the vocabulary)."""
    q = vocabulary.IMPORTS[field]
    return to_canonical(q.units, units, where, field, q.water_equivalent)


def driver_conversion(driver: str, source: str) -> ScalarConversion:
    """The conversion of import ``source`` (in its canonical unit) into model driver ``driver``'s unit: the inverse
    of the driver unit's conversion into the import's (so each factor is made once, by the units library)."""
    return import_conversion(source, vocabulary.DRIVERS[driver].units, f"driver {driver!r}").inverse()


# --- export units of the fluxes -----------------------------------------------------------------------------------

# what one gram of carbon is in each species' unit (the chemistry the units library cannot know)
_SPECIES = {"carbon": (1.0, "1"), "carbon_dioxide": (M_CO2 / M_C, "1"), "mole": (1.0 / M_C, "mol g-1")}


@dataclass(frozen=True)
class FluxUnit:
    """An export unit: its name in configs, its UDUNITS string, the species it counts, and a description."""

    name: str
    udunits: str
    species: str  # "carbon" (mass of C), "carbon_dioxide" (mass of CO2), "mole" (mol CO2 = mol C)
    description: str

    @functools.cached_property
    def factor(self) -> float:
        """value_in_this_unit = value_in_gC_m-2_d-1 * factor, from the units library and the molar masses."""
        if self.udunits == "g m-2 d-1" and self.species == "carbon":
            return 1.0
        ureg = registry()
        ratio, ratio_units = _SPECIES[self.species]
        q = ureg.Quantity(1.0, "g m-2 d-1") * ureg.Quantity(ratio, ratio_units)
        return float(q.to(self.udunits).magnitude)


FLUX_UNITS: dict[str, FluxUnit] = {
    u.name: u
    for u in (
        FluxUnit("gC m-2 d-1", "g m-2 d-1", "carbon", "grams of carbon per m2 per day (the model's unit)"),
        FluxUnit("kgC m-2 s-1", "kg m-2 s-1", "carbon", "kilograms of carbon per m2 per second (land-model default)"),
        FluxUnit("kgCO2 m-2 s-1", "kg m-2 s-1", "carbon_dioxide",
                 "kilograms of CO2 per m2 per second (CESM Fall_fco2_lnd)"),
        FluxUnit("molCO2 m-2 s-1", "mol m-2 s-1", "mole", "moles of CO2 per m2 per second (atmospheric inversions)"),
        FluxUnit("umolCO2 m-2 s-1", "umol m-2 s-1", "mole",
                 "micromoles of CO2 per m2 per second (eddy-covariance convention)"),
    )
}

_FLUX_ALIASES = {
    "kg c m-2 s-1": "kgC m-2 s-1", "kgc m-2 s-1": "kgC m-2 s-1", "kg m-2 s-1": "kgC m-2 s-1",
    "kg co2 m-2 s-1": "kgCO2 m-2 s-1", "kgco2 m-2 s-1": "kgCO2 m-2 s-1",
    "mol co2 m-2 s-1": "molCO2 m-2 s-1", "molco2 m-2 s-1": "molCO2 m-2 s-1", "mol m-2 s-1": "molCO2 m-2 s-1",
    "umol co2 m-2 s-1": "umolCO2 m-2 s-1", "umolco2 m-2 s-1": "umolCO2 m-2 s-1",
    "g c m-2 d-1": "gC m-2 d-1", "gc m-2 d-1": "gC m-2 d-1", "gc m-2 day-1": "gC m-2 d-1",
}


def flux_unit(name: str) -> FluxUnit:
    """Look up an export unit by its config name (a few spellings accepted)."""
    if name in FLUX_UNITS:
        return FLUX_UNITS[name]
    key = " ".join(str(name).lower().split())
    if key in _FLUX_ALIASES:
        return FLUX_UNITS[_FLUX_ALIASES[key]]
    raise InputError(f"flux unit {name!r} is not known; expected one of {sorted(FLUX_UNITS)}")


def convert_flux(values_gc_per_day: ArrayT, unit: str | FluxUnit) -> ArrayT:
    """gC m-2 d-1 -> ``unit`` (numpy or torch; one multiplication)."""
    u = unit if isinstance(unit, FluxUnit) else flux_unit(unit)
    return values_gc_per_day * u.factor if u.factor != 1.0 else values_gc_per_day


CARBON_FLUX_UNIT = "gC m-2 d-1"  # the model's carbon fluxes; exports in it follow the configured FluxUnit


def export_conversion(name: str, unit: FluxUnit) -> ScalarConversion:
    """The conversion of export ``name`` from the model's value (its target's unit) into what the host receives:
    the configured flux ``unit`` for the carbon fluxes (every export whose vocabulary unit is gC m-2 d-1), the
    export's own vocabulary unit otherwise (e.g. ET, mm d-1 -> kg m-2 s-1)."""
    q = vocabulary.EXPORTS[name]
    if q.units == CARBON_FLUX_UNIT:
        return ScalarConversion(scale=unit.factor)
    base = (q.carries or name).removesuffix("_std")
    target = vocabulary.TARGETS.get(base)
    if target is None:
        raise InputError(f"export {name!r} carries {q.carries!r}, which is no target of the vocabulary: its unit "
                         "is not known")
    return conversion(target.units, q.units, f"export {name!r}", name,
                      water_equivalent=q.water_equivalent or target.water_equivalent)
