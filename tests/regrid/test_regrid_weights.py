"""Weight files: ESMF write/read, SCRIP read, normalisations, and errors for files that do not fit."""

from __future__ import annotations

import netCDF4
import numpy as np
import pytest
from conftest import require_tools

from tamrl_coupler.errors import RegridError
from tamrl_coupler.regrid import Grid, Regridder, Weights


@pytest.fixture(scope="module")
def cons():
    return Regridder("r144x96", "r360x180", "conservative", backend="native").weights


def test_esmf_write_read_round_trip(tmp_path, cons):
    cons.write(tmp_path / "w.nc")
    back = Weights.read(tmp_path / "w.nc")
    assert back.normalization == "destarea" and back.method == "conservative"
    assert back.src_shape == (96, 144) and back.dst_shape == (180, 360)
    assert (back.matrix != cons.matrix).nnz == 0
    for nm in ("area_a", "area_b", "frac_a", "frac_b"):
        assert np.array_equal(getattr(back, nm), getattr(cons, nm)), nm
    with netCDF4.Dataset(tmp_path / "w.nc") as ds:  # the layout ESMF and NCO tools expect
        assert ds.conventions == "NCAR-CSM" and ds["row"][:].min() == 1 and ds["col"][:].max() == 13824
        assert len(ds.dimensions["n_s"]) == cons.matrix.nnz
        assert ds["xv_b"].shape == (64800, 4) and ds["yc_a"][0] == -89.0625 and ds["xc_b"][1] == 1.0
    assert np.array_equal(back.coords["xv_a"], Grid.from_name("r144x96").corner_lon)


def test_normalizations(cons):
    x = np.random.default_rng(1).random(cons.n_src)
    assert cons.conservation_error(x) < 1e-13
    frac = cons.to_normalization("fracarea")
    assert frac.conservation_error(x) < 1e-13
    back = frac.to_normalization("destarea")
    assert np.max(np.abs((back.matrix - cons.matrix).data)) < 1e-15


def test_partially_covered_cells_fracarea_vs_destarea():
    # a regional source covering half of one 2.5 deg destination column's cells in longitude
    src = Grid.regular(np.arange(-9.5, 10), [-0.75, -0.125], lat_bounds=np.stack([np.arange(-10, 10),
                       np.arange(-9, 11)], 1), lon_bounds=np.array([[-1.25, -0.25], [-0.25, 0.0]]))
    dst = Grid.from_name("r144x96")  # cells [-1.25, 1.25] around lon 0
    x = np.full(src.size, 3.0)
    frac = Regridder(src, dst, "conservative", backend="native", normalization="fracarea")
    dest = Regridder(src, dst, "conservative", backend="native", normalization="destarea")
    covered = frac.weights.frac_b > 0
    assert np.allclose(frac(x)[covered], 3.0, rtol=1e-14)  # mean over the covered part
    assert np.allclose(dest(x)[covered], 3.0 * frac.weights.frac_b[covered], rtol=1e-14)  # over the whole cell
    assert np.all((frac.weights.frac_b[covered] > 0.1) & (frac.weights.frac_b[covered] < 0.6))


def _write(path, **variables):
    with netCDF4.Dataset(path, "w") as ds:
        for name, (dims, data) in variables.items():
            for d, n in zip(dims, np.shape(data), strict=True):
                if d not in ds.dimensions:
                    ds.createDimension(d, n)
            ds.createVariable(name, np.asarray(data).dtype, dims)[:] = data


def test_bad_weight_files_say_what_is_wrong(tmp_path, cons):
    (tmp_path / "text.nc").write_text("not netcdf")
    with pytest.raises(RegridError, match="not a readable NetCDF file"):
        Weights.read(tmp_path / "text.nc")
    _write(tmp_path / "other.nc", tas=(("x",), np.zeros(3)))
    with pytest.raises(RegridError, match=r"neither ESMF format \(needs variables S, row, col\) nor SCRIP"):
        Weights.read(tmp_path / "other.nc")
    _write(tmp_path / "oob.nc", S=(("n_s",), np.ones(2)), row=(("n_s",), np.array([1, 9], "i4")),
           col=(("n_s",), np.array([1, 2], "i4")), area_a=(("n_a",), np.ones(4)), area_b=(("n_b",), np.ones(5)))
    with pytest.raises(RegridError, match=r"variable 'row' has index 9 outside 1..5"):
        Weights.read(tmp_path / "oob.nc")
    _write(tmp_path / "len.nc", S=(("n_s",), np.ones(2)), row=(("n_r",), np.array([1, 2, 3], "i4")),
           col=(("n_s",), np.array([1, 2], "i4")), area_a=(("n_a",), np.ones(4)), area_b=(("n_b",), np.ones(5)))
    with pytest.raises(RegridError, match=r"S \(2\), row \(3\) and col \(2\) differ in length"):
        Weights.read(tmp_path / "len.nc")
    with pytest.raises(RegridError, match="does not exist"):
        Weights.read(tmp_path / "missing.nc")
    cons.write(tmp_path / "w.nc")
    with pytest.raises(RegridError, match=r"map 13824 source to 64800 destination cells, but the grids .* have "
                                          r"64800 source and 13824 destination"):
        Regridder("r360x180", "r144x96", weights=tmp_path / "w.nc")


def test_scrip_file_from_cdo(tmp_path):
    import subprocess

    require_tools("cdo")
    subprocess.run(["cdo", "-s", "gencon,r360x180", "-const,1,r144x96", str(tmp_path / "s.nc")], check=True)
    w = Weights.read(tmp_path / "s.nc")
    assert w.normalization == "fracarea" and w.method == "conservative" and w.src_shape == (96, 144)
    x = np.random.default_rng(2).random(w.n_src)
    assert w.conservation_error(x) < 1e-13
    nat = Regridder("r144x96", "r360x180", "conservative", backend="native").weights.to_normalization("fracarea")
    assert np.max(np.abs((w.matrix - nat.matrix).data)) < 1e-10


def _tampered(src_path, dst_path, how: str) -> None:
    """A copy of an ESMF weight file with NaN, negative, doubled or duplicated weights."""
    import shutil

    shutil.copy(src_path, dst_path)
    with netCDF4.Dataset(dst_path, "a") as ds:
        S = ds["S"][:]
        if how == "nan":
            S[10] = np.nan
        elif how == "negative":
            S[10] = -0.25
        elif how == "doubled":
            S = S * 2
        elif how == "duplicated":  # one pair listed twice: the reader would sum it
            ds["row"][11] = ds["row"][10]
            ds["col"][11] = ds["col"][10]
        ds["S"][:] = S


@pytest.mark.parametrize("how, message", [
    ("nan", r"1 weight\(s\) are NaN or infinite \(first in destination row \d+\)"),
    ("negative", r"negative weight -2.500e-01 \(destination row \d+, source column \d+\)"),
    ("doubled", r"destination row \d+ sums to 2, not its destination fraction frac_b \(1\); weights scaled, doubled"),
    ("duplicated", r"the pair \(row \d+, col \d+\) is listed 2 times"),
])
def test_weight_files_with_nan_negative_or_doubled_weights_are_refused(tmp_path, cons, how, message):
    cons.write(tmp_path / "good.nc")
    _tampered(tmp_path / "good.nc", tmp_path / f"{how}.nc", how)
    with pytest.raises(RegridError, match=message):
        Weights.read(tmp_path / f"{how}.nc")
    with pytest.raises(RegridError, match=message):
        Regridder("r144x96", "r360x180", weights=tmp_path / f"{how}.nc")


def test_esmf_file_for_grids_starting_at_minus_180_refused_on_a_0_start_grid(shared):
    """The shared ESMF file was made for the -180-start r144x96.nc/r360x180.nc; CDO's r144x96/r360x180 (same sizes)
    start at 0: every value would move by half the globe. Refused naming the cell; accepted on its own grids."""
    base = shared("data/weights/esmf_r144x96_to_r360x180_conserve.nc").parent
    wfile = base / "esmf_r144x96_to_r360x180_conserve.nc"
    with pytest.raises(RegridError, match=r"source cell \d+ is at lat [-0-9.]+, lon [-0-9.]+ in the weight file but "
                                          r"at lat [-0-9.]+, lon [-0-9.]+ on grid 'r144x96' \(\d+ centres differ\)"):
        Regridder("r144x96", "r360x180", weights=wfile)
    rg = Regridder(Grid.from_file(base / "r144x96.nc"), Grid.from_file(base / "r360x180.nc"), weights=wfile)
    assert rg.backend == "file"


def test_weights_checked_against_corners_areas_and_masks(tmp_path, cons):
    a, b = Grid.from_name("r144x96"), Grid.from_name("r360x180")
    cons.write(tmp_path / "w.nc")
    # same centres, other corners: a grid whose cells are half as tall in latitude (made up, same sizes)
    lb = a.lat_bounds.copy()
    lb[:, 1] = lb[:, 0] + 0.5 * (lb[:, 1] - lb[:, 0])
    squashed = Grid.regular(a.lat1d, a.lon1d, lb, a.lon_bounds, name="squashed")
    with pytest.raises(RegridError, match=r"source cell \d+ has corners at .* in the weight file, but grid 'squashed' "
                                          r"has .* \(13824 cells differ\)"):
        Regridder(squashed, b, weights=tmp_path / "w.nc")
    # a mask that differs from the one the weights were made with
    masked = Regridder(a.with_mask(np.arange(a.size) % 3 > 0), b, "conservative", backend="native").weights
    masked.write(tmp_path / "m.nc")
    with pytest.raises(RegridError, match=r"the source mask differs from the weights' in 9216 cells \(first cell 0: "
                                          r"1 on grid 'r144x96', 0 in the weights\)"):
        Regridder(a.with_mask(np.arange(a.size) % 3 != 1), b, weights=tmp_path / "m.nc")
    # SCRIP-like file without centres: areas compared
    w = Weights(cons.matrix, area_a=cons.area_a * 1.5, area_b=cons.area_b, frac_a=cons.frac_a, frac_b=cons.frac_b,
                source="a test")
    with pytest.raises(RegridError, match=r"source cell \d+ has area .* in the weights but .* on grid 'r144x96'"):
        Regridder(a, b, weights=w)


def test_a_cache_file_of_another_method_under_this_name_is_not_used(tmp_path, caplog):
    """Issue 19: a valid bilinear cache file placed under the conservative file's name was used (fluxes off by up
    to 76 %). The digest covers the grids and the method: the file is reported and the weights made again."""
    import shutil

    a, b = Grid.from_name("r144x96"), Grid.from_name("r360x180")
    cons = Regridder(a, b, "conservative", backend="native", cache_dir=tmp_path)
    bil = Regridder(a, b, "bilinear", backend="native", cache_dir=tmp_path)
    (cfile,) = tmp_path.glob("*_conservative_*.nc")
    (bfile,) = tmp_path.glob("*_bilinear_*.nc")
    shutil.copy(bfile, cfile)
    with caplog.at_level("WARNING", logger="tamrl_coupler.regrid"):
        again = Regridder(a, b, "conservative", backend="native", cache_dir=tmp_path)
    assert again.backend == "native" and "not used" in caplog.text and cfile.name in caplog.text
    assert (again.matrix != cons.matrix).nnz == 0 and (again.matrix != bil.matrix).nnz > 0
