"""Units from the units library: every CF units string a forcing file may carry converts to the import's unit, the
same factors as UDUNITS-2 itself (cfunits), water depth only where declared, and errors naming variable and units."""

from __future__ import annotations

import numpy as np
import pytest

from tamrl_coupler.constants import M_C, M_CO2
from tamrl_coupler.errors import InputError
from tamrl_coupler.physics.units import (
    FLUX_UNITS,
    conversion,
    convert_flux,
    driver_conversion,
    flux_unit,
    import_conversion,
    parse_units,
    to_canonical,
)

WHERE = "forcing file f.nc, variable 'v'"

# (import field, units string in a file, a value in those units, the same value in the import's canonical unit)
CASES = [
    ("tas", "degC", 20.0, 293.15),
    ("tas", "celsius", -10.0, 263.15),
    ("tas", "K", 280.0, 280.0),
    ("rsds", "W/m^2", 250.0, 250.0),
    ("rsds", "W m-2", 250.0, 250.0),
    ("rsds", "MJ m-2 d-1", 8.64, 100.0),
    ("pr", "kg m-2 s-1", 2e-5, 2e-5),
    ("pr", "mm/day", 86.4, 1e-3),  # 1 mm of liquid water on 1 m2 is 1 kg: through the water density, declared
    ("pr", "mm d-1", 8.64, 1e-4),
    ("ps", "hPa", 1013.25, 101325.0),
    ("ps", "kPa", 101.325, 101325.0),
    ("ps", "Pa", 101325.0, 101325.0),
    ("huss", "1", 0.012, 0.012),
    ("huss", "%", 1.2, 0.012),
    ("huss", "g kg-1", 12.0, 0.012),
    ("co2", "1e-6", 400.0, 400.0),
    ("co2", "mol mol-1", 4e-4, 400.0),
    ("lai", "1", 3.5, 3.5),
]


@pytest.mark.parametrize("field,units,value,expected", CASES, ids=[f"{c[0]}[{c[1]}]" for c in CASES])
def test_every_cf_units_string_converts_to_the_import_unit(field, units, value, expected):
    c = import_conversion(field, units, WHERE)
    assert c.apply(np.array([value]))[0] == pytest.approx(expected, rel=1e-14)
    assert c.inverse().apply(c.apply(np.array([value])))[0] == pytest.approx(value, rel=1e-14)


@pytest.mark.parametrize("units,target", [("degC", "K"), ("celsius", "K"), ("W/m^2", "W m-2"), ("hPa", "Pa"),
                                          ("kPa", "Pa"), ("%", "1"), ("1e-6", "1"), ("MJ m-2 d-1", "W m-2"),
                                          ("mm/day", "m s-1"), ("g kg-1", "kg kg-1")])
def test_factors_agree_with_udunits(units, target):
    """The pure-Python library gives UDUNITS-2's own numbers (cfunits calls the C library)."""
    cfunits = pytest.importorskip("cfunits", reason="cfunits (the UDUNITS-2 cross-check) is a dev dependency")
    x = np.array([0.0, 1.0, 37.5])
    expected = cfunits.Units.conform(x, cfunits.Units(units), cfunits.Units(target))
    np.testing.assert_allclose(conversion(units, target, WHERE, "v").apply(x), expected, rtol=1e-14, atol=1e-12)


def test_water_depth_converts_only_for_water_equivalent_quantities():
    # precipitation declares it: mm d-1 <-> kg m-2 s-1 with the density of liquid water
    assert driver_conversion("precip", "pr").scale == pytest.approx(86400.0, rel=1e-15)
    # anything else would be a guess: the same strings, a quantity that does not declare it, is an error with a hint
    with pytest.raises(InputError, match=r"field 'evap' has units 'mm d-1', which do not convert to 'kg m-2 s-1' "
                                         r"\(.*declared water-equivalent\)"):
        conversion("mm d-1", "kg m-2 s-1", WHERE, "evap")


@pytest.mark.parametrize("field,units", [("tas", "W m-2"), ("rsds", "mm/day"), ("ps", "K"), ("pr", "hPa"),
                                         ("huss", "kg m-2")])
def test_incompatible_units_name_variable_and_both_units(field, units):
    from tamrl_coupler import vocabulary

    canonical = vocabulary.IMPORTS[field].units
    with pytest.raises(InputError, match=rf"{WHERE}: field '{field}' has units '{units}', which do not convert to "
                                         rf"'{canonical}'"):
        import_conversion(field, units, WHERE)


def test_unknown_and_missing_units():
    with pytest.raises(InputError, match=r"field 'tas' has units 'degrees Kelvinish' \(expected 'K'\): units "
                                         r"'degrees Kelvinish' are not a UDUNITS/CF unit string"):
        import_conversion("tas", "degrees Kelvinish", WHERE)
    with pytest.raises(InputError, match="field 'tas' has no units attribute; expected 'K'"):
        import_conversion("tas", None, WHERE)
    assert to_canonical("1", None, WHERE, "igbp").apply(np.array([3.0]))[0] == 3.0  # a class index needs none


def test_export_units_from_the_library_and_the_molar_masses():
    one = np.array([1.0])  # 1 gC m-2 d-1
    assert convert_flux(one, "gC m-2 d-1") is one
    assert convert_flux(one, "kgC m-2 s-1")[0] == pytest.approx(1e-3 / 86400, rel=1e-15)
    assert convert_flux(one, "kgCO2 m-2 s-1")[0] == pytest.approx(1e-3 / 86400 * M_CO2 / M_C, rel=1e-15)
    assert convert_flux(one, "molCO2 m-2 s-1")[0] == pytest.approx(1 / M_C / 86400, rel=1e-15)
    assert convert_flux(one, "umolCO2 m-2 s-1")[0] == pytest.approx(1e6 / M_C / 86400, rel=1e-15)
    for u in FLUX_UNITS.values():  # each export's UDUNITS string is one the library (and the CF checker) knows
        assert not parse_units(u.udunits, u.name).dimensionless
    assert flux_unit("kg CO2 m-2 s-1").name == "kgCO2 m-2 s-1"
    with pytest.raises(InputError, match="flux unit 'furlongs'"):
        flux_unit("furlongs")
