"""Site data is range-checked at the edge (data/checks.py): each case of issue 19 that read silently wrong is an
InputError naming the file, the site and the column; unit strings pint cannot parse are InputErrors too."""

from __future__ import annotations

import re
import shutil

import numpy as np
import pandas as pd
import pytest
from conftest import SAMPLE

from tamrl_coupler.data.reader import read_dataset
from tamrl_coupler.errors import InputError

FULLSET = "FLX_AU-Ade_FLUXNET2015_FULLSET_DD_2007-2009.csv"


@pytest.fixture
def tower(shared, tmp_path):
    """A real daily tower file and its site table (AU-Ade only) in tmp_path."""
    daily = shared("data/fluxnet_daily")
    shutil.copy(daily / FULLSET, tmp_path / FULLSET)
    table = pd.read_csv(daily / "sites.csv")
    table[table.SITE_ID == "AU-Ade"].to_csv(tmp_path / "sites.csv", index=False)
    return tmp_path


def _edit(path, column, row, value):
    df = pd.read_csv(path, dtype={column: object})
    df.loc[row, column] = value
    df.to_csv(path, index=False)


@pytest.mark.parametrize("column,value,message", [
    ("TA_F", 293.4, r"column TA_F: value 293.4 .*outside \[-80, 60\] degC: values near 273 or above mean K"),
    ("TA_F", -9999.5, r"column TA_F: value -9999.5 .*sentinels"),
    ("TA_F", -6999, r"column TA_F: value -6999"),
    ("SW_IN_F", -50.0, r"column SW_IN_F: value -50 .*negative shortwave"),
    ("VPD_F", -3.0, r"column VPD_F: value -3 .*negative VPD"),
    ("P_F", 4200.0, r"column P_F: value 4200 .*another unit"),
    ("TA_F", "-inf", r"column TA_F: value -inf"),
    ("GPP_NT_VUT_REF", 420.0, r"column GPP_NT_VUT_REF: value 420"),
    ("TA_F", "warm", r"column TA_F, row 12: 'warm' is not a number"),
    ("TIMESTAMP", "20070110.5", r"column TIMESTAMP, row 11: '20070110.5' is not a whole YYYYMMDD day"),
])
def test_tower_columns_out_of_range_name_file_site_and_column(tower, column, value, message):
    _edit(tower / FULLSET, column, 9 if column == "TIMESTAMP" else 10, value)
    with pytest.raises(InputError, match=f"{FULLSET}.*: (site AU-Ade, )?" + message):
        read_dataset(tower, period="daily")


@pytest.mark.parametrize("column,value,message", [
    ("lat", 200.0, r"site AU-Ade, column lat: 200 is outside \[-90, 90\]"),
    ("lon", 400.0, r"site AU-Ade, column lon: 400 is outside \[-180, 360\]"),
    ("elevation", 99999.0, r"site AU-Ade, column elevation: 99999 is outside \[-500, 9000\]"),
    ("IGBP", "XYZ", r"site AU-Ade, column IGBP: 'XYZ' is not an IGBP class"),
    ("IGBP", "7", r"site AU-Ade, column IGBP: '7' is not an IGBP class"),
    ("swap", None, r"site AU-Ade, column lat: 131.118 is outside \[-90, 90\]"),
    ("duplicate", None, r"site AU-Ade has two rows that disagree"),
])
def test_site_table_fields_are_checked(tower, column, value, message):
    path = tower / "sites.csv"
    table = pd.read_csv(path, dtype={"IGBP": object})
    if column == "swap":
        table[["lat", "lon"]] = table[["lon", "lat"]].to_numpy()
    elif column == "duplicate":
        other = table.copy()
        other["lat"] = other["lat"] + 1.0
        table = pd.concat([table, other])
    else:
        table[column] = value
    table.to_csv(path, index=False)
    with pytest.raises(InputError, match=r"sites.csv: " + message):
        read_dataset(tower, period="daily")


def test_swapped_positions_inside_the_valid_ranges_are_told_by_the_site_country():
    """DE-Tha at (50.96, 13.57) swapped to (13.57, 50.96) stays within [-90, 90] x [-180, 360] but not in Germany."""
    from tamrl_coupler.data.checks import check_site

    check_site("DE-Tha", {"lat": 50.96, "lon": 13.57, "igbp": "ENF"}, "sites.csv")
    with pytest.raises(InputError, match=r"sites.csv: site DE-Tha: lat 13.57, lon 50.96 is outside DE .*latitude and "
                                         r"longitude are swapped"):
        check_site("DE-Tha", {"lat": 13.57, "lon": 50.96, "igbp": "ENF"}, "sites.csv")
    check_site("XX-Abc", {"lat": 13.57, "lon": 50.96}, "sites.csv")  # a country the table does not know: no guess


def test_identical_duplicate_site_rows_are_one_site(tower):
    path = tower / "sites.csv"
    table = pd.read_csv(path)
    pd.concat([table, table]).to_csv(path, index=False)
    assert list(read_dataset(tower, period="daily").sites) == ["AU-Ade"]


def test_fluxval_drivers_and_positions_are_checked(tmp_path):
    """FluxVal tmin = 290 (K for degC) and latitude 200: errors naming the file, the site and the variable."""
    import netCDF4

    bad = tmp_path / "fv.nc"
    shutil.copy(SAMPLE, bad)
    with netCDF4.Dataset(bad, "a") as ds:
        site = str(ds["site"][0])
        tmin = ds["tmin"][:]
        tmin[..., 0] = 290.0
        ds["tmin"][:] = tmin
    with pytest.raises(InputError, match=rf"fv.nc: site {site}, column tmin: value 290 .*near 273 or above mean K"):
        read_dataset(bad)
    shutil.copy(SAMPLE, bad)
    with netCDF4.Dataset(bad, "a") as ds:
        lat = ds["lat"][:]
        lat[0] = 200.0
        ds["lat"][:] = lat
    with pytest.raises(InputError, match=rf"fv.nc: site {site}, column lat: 200 is outside"):
        read_dataset(bad)


def test_min_site_obs_must_be_positive():
    from tamrl_coupler.cli import main

    assert main(["evaluate", "--data", str(SAMPLE), "--min-site-obs", "-1", "--quiet"]) == 1


def test_pandas_parser_errors_name_the_file(tower):
    (tower / FULLSET).write_text("TIMESTAMP,TA_F,SW_IN_F,VPD_F,P_F\n20070101,1,2,3,4\n20070102,1,2,3,4,5,6,7\n")
    with pytest.raises(InputError, match=f"daily tower file .*{FULLSET} cannot be read as CSV"):
        read_dataset(tower, period="daily")


@pytest.mark.parametrize("units", ["0", "-1", "(", "1/0", "**", "K^", "1e400"])
def test_odd_unit_strings_are_input_errors_naming_the_field(units):
    from tamrl_coupler.physics.units import import_conversion

    with pytest.raises(InputError, match=rf"forcing file f.nc: field 'huss' has units '{re.escape(units)}'"):
        import_conversion("huss", units, "forcing file f.nc")
    assert np.isfinite(import_conversion("huss", "g kg-1", "f").scale)
