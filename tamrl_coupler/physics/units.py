"""Units of the fluxes the component exports and of the forcing it imports.

Inside the product fluxes are gC m-2 d-1 (what the model was trained on). Hosts want SI rates: CLM/CTSM's
``Fall_fco2_lnd`` is kg CO2 m-2 s-1, land models report kg C m-2 s-1, atmospheric inversions want mol CO2 m-2 s-1.
Conversions are pure multiplications by one factor, so the carbon balance identity survives them exactly when NEE
is recomputed after conversion (the component does that).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tamrl_coupler.errors import InputError

M_C = 12.011  # g mol-1, carbon
M_CO2 = 44.0095  # g mol-1, carbon dioxide
SECONDS_PER_DAY = 86400.0


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


def convert_flux(values_gc_per_day, unit: str | FluxUnit):
    """gC m-2 d-1 -> ``unit`` (numpy or torch; one multiplication)."""
    u = unit if isinstance(unit, FluxUnit) else flux_unit(unit)
    return values_gc_per_day * u.factor if u.factor != 1.0 else values_gc_per_day


# --- import (forcing) units -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ScalarConversion:
    """value_canonical = value * scale + offset."""

    scale: float = 1.0
    offset: float = 0.0

    def apply(self, x: np.ndarray) -> np.ndarray:
        if self.scale == 1.0 and self.offset == 0.0:
            return x
        return x * self.scale + self.offset


# canonical import unit per field, and the other spellings/units accepted (conversion into the canonical unit)
IMPORT_UNITS: dict[str, tuple[str, dict[str, ScalarConversion]]] = {
    "tas": ("K", {"k": ScalarConversion(), "kelvin": ScalarConversion(),
                  "degc": ScalarConversion(1.0, 273.15), "celsius": ScalarConversion(1.0, 273.15),
                  "degrees_celsius": ScalarConversion(1.0, 273.15), "c": ScalarConversion(1.0, 273.15)}),
    "tasmin": ("K", {"k": ScalarConversion(), "kelvin": ScalarConversion(),
                     "degc": ScalarConversion(1.0, 273.15), "celsius": ScalarConversion(1.0, 273.15)}),
    "tasmax": ("K", {"k": ScalarConversion(), "kelvin": ScalarConversion(),
                     "degc": ScalarConversion(1.0, 273.15), "celsius": ScalarConversion(1.0, 273.15)}),
    "vpd": ("Pa", {"pa": ScalarConversion(), "hpa": ScalarConversion(100.0), "kpa": ScalarConversion(1000.0)}),
    "huss": ("kg kg-1", {"kg kg-1": ScalarConversion(), "kg/kg": ScalarConversion(), "1": ScalarConversion(),
                         "g kg-1": ScalarConversion(1e-3), "g/kg": ScalarConversion(1e-3)}),
    "ps": ("Pa", {"pa": ScalarConversion(), "hpa": ScalarConversion(100.0), "mbar": ScalarConversion(100.0),
                  "kpa": ScalarConversion(1000.0)}),
    "rsds": ("W m-2", {"w m-2": ScalarConversion(), "w/m2": ScalarConversion(), "w m**-2": ScalarConversion()}),
    "rlds": ("W m-2", {"w m-2": ScalarConversion(), "w/m2": ScalarConversion(), "w m**-2": ScalarConversion()}),
    "pr": ("kg m-2 s-1", {"kg m-2 s-1": ScalarConversion(), "mm s-1": ScalarConversion(),
                          "mm/s": ScalarConversion(), "kg m**-2 s**-1": ScalarConversion(),
                          "mm d-1": ScalarConversion(1.0 / SECONDS_PER_DAY),
                          "mm day-1": ScalarConversion(1.0 / SECONDS_PER_DAY),
                          "m s-1": ScalarConversion(1000.0)}),
    "sfcWind": ("m s-1", {"m s-1": ScalarConversion(), "m/s": ScalarConversion()}),
    "co2": ("ppm", {"ppm": ScalarConversion(), "1e-6": ScalarConversion(), "umol mol-1": ScalarConversion(),
                    "mol mol-1": ScalarConversion(1e6), "1": ScalarConversion(1e6)}),
    "lai": ("m2 m-2", {"m2 m-2": ScalarConversion(), "1": ScalarConversion(), "m2/m2": ScalarConversion()}),
    "landcover": ("1", {"1": ScalarConversion(), "": ScalarConversion()}),
}


def import_conversion(field: str, units: str | None, where: str) -> ScalarConversion:
    """The conversion from ``units`` to the field's canonical unit; a clear error naming ``where`` otherwise."""
    canonical, accepted = IMPORT_UNITS[field]
    if units is None:
        return ScalarConversion()
    key = " ".join(str(units).strip().lower().split())
    if key in accepted:
        return accepted[key]
    raise InputError(
        f"{where}: field {field!r} has units {units!r}; expected {canonical!r} or one of {sorted(accepted)}"
    )


# --- driver unit helpers (model drivers are daily-rate units) ------------------------------------------------------

def w_m2_to_mj_m2_d(x):
    """Mean irradiance W m-2 -> daily energy MJ m-2 d-1."""
    return x * (SECONDS_PER_DAY * 1e-6)


def kg_m2_s_to_mm_d(x):
    """Precipitation flux kg m-2 s-1 (= mm s-1 of water) -> mm d-1."""
    return x * SECONDS_PER_DAY


def kelvin_to_celsius(x):
    return x - 273.15
