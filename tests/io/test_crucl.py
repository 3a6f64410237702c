"""The CRU CL 1.0 reader (io/crucl.py): fixed-width fields read by position, the header checked, units applied;
with the shared data, the README's spot checks."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import shared_path

from tamrl_coupler.errors import InputError
from tamrl_coupler.io.crucl import parse_grid, read_variable

HEADER = (b"    grd_sz      xmin      ymin      xmax      ymax    n_cols    n_rows  n_months\n"
          b"      0.50      0.25    -89.75    359.75     89.75       720       360        12\n")


def test_fields_are_read_by_position_and_bad_files_named():
    row = b"-9999" * 719 + b"  123"
    text = HEADER + b"\n".join([row] * (12 * 360)) + b"\n"
    grid = parse_grid(text, "test")
    assert grid.shape == (12, 360, 720) and grid[0, 0, 0] == -9999 and grid[11, 359, 719] == 123
    with pytest.raises(InputError, match="grid header"):
        parse_grid(HEADER.replace(b"720", b"360", 1) + b"\n".join([row] * 4320), "bad header")
    with pytest.raises(InputError, match="characters"):
        parse_grid(HEADER + b"\n".join([row] * 4319 + [row[:-5]]), "short row")


def test_readme_spot_checks():
    directory = shared_path("data/cru_cl")
    tmp = read_variable(directory, "tmp")
    lat, lon = tmp.lat, tmp.lon
    i, j = np.argmin(abs(lat - 50.9)), np.argmin(abs(lon - 11.6))  # near Jena
    assert tmp.values[:, i, j].min() == pytest.approx(-1.6) and tmp.values[:, i, j].max() == pytest.approx(16.8)
    rad98 = read_variable(directory, "rad", "crad6190.dat")  # the README's values are the 1998 file's
    assert rad98.values[0, i, j] == 26 and rad98.values[:, i, j].max() == 193  # "26 ... 193": January, June
    vap = read_variable(directory, "vap")
    assert vap.values[:, i, j].min() == pytest.approx(5.1) and vap.values[:, i, j].max() == pytest.approx(13.5)
    rad = read_variable(directory, "rad")  # the 1999 file, used by the test bed: higher, nearer the towers
    assert (rad.values[:, i, j] >= rad98.values[:, i, j]).all()
    assert np.isnan(tmp.values[:, 0, 0]).all()  # Antarctica / ocean: missing
