"""Units of the fluxes the component exports and of the forcing it imports.

Inside the product fluxes are gC m-2 d-1 (what the model was trained on). Hosts want SI rates: CLM/CTSM's
``Fall_fco2_lnd`` is kg CO2 m-2 s-1, land models report kg C m-2 s-1, atmospheric inversions want mol CO2 m-2 s-1.
Conversions are pure multiplications by one factor, so the carbon balance identity survives them exactly when NEE
is recomputed after conversion (the component does that).

Every other quantity has one canonical unit, declared in :mod:`tamrl_coupler.vocabulary`; this module only knows
which other spellings and units convert into each canonical unit, and by how much.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeVar

import numpy as np

from tamrl_coupler import vocabulary
from tamrl_coupler.constants import M_C, M_CO2, SECONDS_PER_DAY, ZERO_CELSIUS
from tamrl_coupler.errors import InputError

ArrayT = TypeVar("ArrayT")  # a numpy array or a torch tensor


@dataclass(frozen=True)
class FluxUnit:
    """An export unit: its name in configs, its UDUNITS string, and the factor from gC m-2 d-1."""

    name: str
    udunits: str
    factor: float  # value_in_this_unit = value_in_gC_m-2_d-1 * factor
    species: str  # "carbon" (mass of C), "carbon_dioxide" (mass of CO2), "mole" (mol CO2)
    description: str


FLUX_UNITS: dict[str, FluxUnit] = {
    u.name: u
    for u in (
        FluxUnit("gC m-2 d-1", "g m-2 d-1", 1.0, "carbon", "grams of carbon per m2 per day (the model's unit)"),
        FluxUnit("kgC m-2 s-1", "kg m-2 s-1", 1e-3 / SECONDS_PER_DAY, "carbon",
                 "kilograms of carbon per m2 per second (land-model default)"),
        FluxUnit("kgCO2 m-2 s-1", "kg m-2 s-1", 1e-3 / SECONDS_PER_DAY * M_CO2 / M_C, "carbon_dioxide",
                 "kilograms of CO2 per m2 per second (CESM Fall_fco2_lnd)"),
        FluxUnit("molCO2 m-2 s-1", "mol m-2 s-1", 1.0 / M_C / SECONDS_PER_DAY, "mole",
                 "moles of CO2 per m2 per second (atmospheric inversions)"),
        FluxUnit("umolCO2 m-2 s-1", "umol m-2 s-1", 1e6 / M_C / SECONDS_PER_DAY, "mole",
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


# --- every other unit: conversions into each canonical unit of the vocabulary ------------------------------------

@dataclass(frozen=True)
class ScalarConversion:
    """value_canonical = value * scale + offset."""

    scale: float = 1.0
    offset: float = 0.0

    def apply(self, x: np.ndarray) -> np.ndarray:
        """Into the canonical unit (``x`` itself when nothing changes)."""
        if self.scale == 1.0 and self.offset == 0.0:
            return x
        return x * self.scale + self.offset

    def inverse(self) -> ScalarConversion:
        """canonical -> this unit."""
        return ScalarConversion(1.0 / self.scale, -self.offset / self.scale)


_SAME = ScalarConversion()
_FROM_CELSIUS = ScalarConversion(1.0, ZERO_CELSIUS)
_FROM_MJ_PER_DAY = ScalarConversion(1e6 / SECONDS_PER_DAY)
# canonical import unit -> {accepted spelling or unit (lower case, single spaces): conversion into the canonical
# unit}; the model drivers' units (degC, hPa, MJ m-2 d-1, mm d-1) are among them
ACCEPTED_UNITS: dict[str, dict[str, ScalarConversion]] = {
    "K": {"k": _SAME, "kelvin": _SAME, "degc": _FROM_CELSIUS, "celsius": _FROM_CELSIUS,
          "degrees_celsius": _FROM_CELSIUS, "c": _FROM_CELSIUS},
    "Pa": {"pa": _SAME, "hpa": ScalarConversion(100.0), "mbar": ScalarConversion(100.0),
           "kpa": ScalarConversion(1000.0)},
    "kg kg-1": {"kg kg-1": _SAME, "kg/kg": _SAME, "1": _SAME, "g kg-1": ScalarConversion(1e-3),
                "g/kg": ScalarConversion(1e-3)},
    "W m-2": {"w m-2": _SAME, "w/m2": _SAME, "w m**-2": _SAME,
              "mj m-2 d-1": _FROM_MJ_PER_DAY, "mj m-2 day-1": _FROM_MJ_PER_DAY},
    "kg m-2 s-1": {"kg m-2 s-1": _SAME, "mm s-1": _SAME, "mm/s": _SAME, "kg m**-2 s**-1": _SAME,
                   "mm d-1": ScalarConversion(1.0 / SECONDS_PER_DAY),
                   "mm day-1": ScalarConversion(1.0 / SECONDS_PER_DAY), "m s-1": ScalarConversion(1000.0)},
    "m s-1": {"m s-1": _SAME, "m/s": _SAME},
    "ppm": {"ppm": _SAME, "1e-6": _SAME, "umol mol-1": _SAME, "mol mol-1": ScalarConversion(1e6),
            "1": ScalarConversion(1e6)},
    "m2 m-2": {"m2 m-2": _SAME, "1": _SAME, "m2/m2": _SAME},
    "1": {"1": _SAME, "": _SAME},
}


def to_canonical(canonical: str, units: str | None, where: str, field: str) -> ScalarConversion:
    """The conversion from ``units`` into ``canonical``; a clear error naming ``where`` and ``field`` otherwise.

    ``units`` None (a file that does not say) is taken as the canonical unit."""
    if units is None:
        return _SAME
    accepted = ACCEPTED_UNITS[canonical]
    key = " ".join(str(units).strip().lower().split())
    if key in accepted:
        return accepted[key]
    raise InputError(f"{where}: field {field!r} has units {units!r}; expected {canonical!r} or one of "
                     f"{sorted(accepted)}")


def import_conversion(field: str, units: str | None, where: str) -> ScalarConversion:
    """The conversion from ``units`` to import ``field``'s canonical unit (from the vocabulary)."""
    return to_canonical(vocabulary.IMPORTS[field].units, units, where, field)


def driver_conversion(driver: str, source: str) -> ScalarConversion:
    """The conversion of import ``source`` (in its canonical unit) into model driver ``driver``'s unit: the inverse
    of the driver unit's conversion into the import's (so each factor is written once, in ACCEPTED_UNITS)."""
    return import_conversion(source, vocabulary.DRIVERS[driver].units, f"driver {driver!r}").inverse()
