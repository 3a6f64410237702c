"""Real GLDAS 0.25 degree forcing (fill over water) regridded conservatively: conservation, CDO agreement,
and the shared real ESMF weight files."""

from __future__ import annotations

import os
import shutil
import subprocess

import numpy as np
import pytest

from tamrl_coupler.regrid import Grid, Regridder, Weights

GLDAS = "data/gldas/GLDAS_NOAH025_3H.A20150101.0000.021.nc4"
# skipped on a user's machine without cdo; in CI (installed by scripts/install.sh) a missing cdo fails the test
needs_cdo = pytest.mark.skipif(shutil.which("cdo") is None and not os.environ.get("CI"),
                               reason="cdo not on PATH (apt install cdo)")


@pytest.fixture(scope="module")
def gldas(shared):
    import netCDF4

    path = shared(GLDAS)
    with netCDF4.Dataset(path) as ds:
        fields = {n: np.ma.filled(ds[n][0].astype(np.float64), np.nan).ravel()
                  for n in ("Tair_f_inst", "Rainf_f_tavg", "SWdown_f_tavg")}
    return path, Grid.from_file(path), fields


def _integral(w: Weights, x: np.ndarray, frac: np.ndarray, side: str) -> float:
    """Area-weighted integral of a field given per unit of its (land) fraction, with the weights' own areas."""
    x0 = np.where(frac > 0, np.nan_to_num(x), 0.0)
    if side == "src":
        fa = w.frac_a if w.frac_a is not None else 1.0
        return float(np.sum(w.area_a * fa * frac * x0))
    return float(np.sum(w.area_b * frac * x0))


@pytest.mark.parametrize("backend", ["native", pytest.param("cdo", marks=needs_cdo)])
@pytest.mark.parametrize("target", ["r360x180", "r144x96"])
def test_conservative_there_and_back_conserves(gldas, backend, target):
    _, src, fields = gldas
    there = Regridder(src, target, "conservative", backend=backend)
    back = Regridder(target, src, "conservative", backend=backend)
    for name, x in fields.items():
        land = np.isfinite(x).astype(np.float64)  # land fraction of each GLDAS cell: 1 on land, 0 over water
        y = there(x, skipna=True)
        f_dst = there.dst_fraction(land)
        assert np.isfinite(y[f_dst > 0]).all() and np.isnan(y[f_dst == 0]).all()
        total = _integral(there.weights, x, land, "src")
        err = abs(_integral(there.weights, y, f_dst, "dst") - total) / abs(total)
        assert err <= 1e-12, f"{name} -> {target} ({backend}): relative integral error {err:.2e}"
        z = back(y, src_fraction=f_dst)
        f_back = back.dst_fraction(f_dst)
        total_b = _integral(back.weights, y, f_dst, "src")
        assert abs(total_b - total) / abs(total) <= 1e-12  # both weight sets use the same exact lat-lon areas
        err_b = abs(_integral(back.weights, z, f_back, "dst") - total_b) / abs(total_b)
        assert err_b <= 1e-12, f"{name} {target} -> GLDAS ({backend}): relative integral error {err_b:.2e}"


def _cdo(*args: str) -> None:
    subprocess.run(["cdo", "-s", *args], check=True, capture_output=True)


@needs_cdo
@pytest.mark.parametrize("target", ["r360x180", "r144x96"])
def test_matches_cdo_remapcon(gldas, tmp_path, target):
    import netCDF4

    path, src, fields = gldas
    x = fields["Tair_f_inst"]
    ref_file, wfile = tmp_path / "cdo.nc", tmp_path / "w.nc"
    _cdo("-b", "F64", f"remapcon,{target}", "-selname,Tair_f_inst", str(path), str(ref_file))
    _cdo(f"gencon,{target}", "-selname,Tair_f_inst", str(path), str(wfile))  # the weights remapcon makes
    with netCDF4.Dataset(ref_file) as ds:
        ref = np.ma.filled(ds["Tair_f_inst"][0], np.nan).ravel()
    mapped = np.isfinite(ref)
    assert mapped.sum() > 1000
    # (a) CDO's own weights (land mask baked in), applied by us
    y_file = Regridder(src, target, weights=wfile)(x, skipna=True)
    assert np.array_equal(np.isfinite(y_file), mapped)
    rel = np.max(np.abs(y_file[mapped] - ref[mapped]) / np.abs(ref[mapped]))
    assert rel <= 1e-10, rel
    # (b) weights made by our cdo backend (no mask) with the mask applied from the data's fill values
    y_gen = Regridder(src, target, "conservative", backend="cdo")(x, skipna=True)
    assert np.array_equal(np.isfinite(y_gen), mapped)
    assert np.max(np.abs(y_gen[mapped] - ref[mapped]) / np.abs(ref[mapped])) <= 1e-10
    # (c) our native weights: exact lat-lon overlaps, the same numbers up to CDO's clipping round-off
    y_nat = Regridder(src, target, "conservative", backend="native")(x, skipna=True)
    assert np.array_equal(np.isfinite(y_nat), mapped)
    assert np.max(np.abs(y_nat[mapped] - ref[mapped]) / np.abs(ref[mapped])) <= 1e-10


ESMF_FILES = ["esmf_r144x96_to_r360x180_conserve.nc", "esmf_r360x180_to_r144x96_conserve.nc",
              "esmf_r144x96_to_r360x180_bilinear.nc"]


@pytest.mark.parametrize("fname", ESMF_FILES)
def test_shared_esmf_weights_apply_and_conserve(gldas, shared, fname):
    _, src_gldas, fields = gldas
    w = Weights.read(shared(f"data/weights/{fname}"))
    a_name, b_name = fname.removeprefix("esmf_").split("_to_")
    b_name = b_name.split("_")[0]
    ga = Grid.from_file(shared(f"data/weights/{a_name}.nc"))
    gb = Grid.from_file(shared(f"data/weights/{b_name}.nc"))
    assert (w.n_src, w.n_dst) == (ga.size, gb.size)
    assert w.src_shape == ga.shape and w.dst_shape == gb.shape
    # a real field on the weights' source grid: GLDAS air temperature, conservatively on land
    to_a = Regridder(src_gldas, ga, "conservative", backend="native")
    x = to_a(fields["Tair_f_inst"], skipna=True)
    land = to_a.dst_fraction(np.isfinite(fields["Tair_f_inst"]))
    rg = Regridder(ga, gb, weights=w)
    y = rg(x, src_fraction=land)
    if w.method == "bilinear":
        assert w.normalization == "none"  # ESMF writes "n/a": rows are plain interpolation weights
        rows = np.asarray(w.matrix.sum(axis=1)).ravel()
        assert np.allclose(rows[rows > 0], 1.0, atol=1e-12)
        smooth = np.cos(np.deg2rad(ga.lat)) * np.sin(np.deg2rad(ga.lon))  # bilinear reproduces smooth fields
        exact = np.cos(np.deg2rad(gb.lat)) * np.sin(np.deg2rad(gb.lon))
        assert np.max(np.abs(rg(smooth) - exact)) < 2e-3
        return
    assert w.method == "conservative" and w.normalization == "destarea"
    assert abs(w.area_a.sum() / (4 * np.pi) - 1) < 1e-13 and abs(w.area_b.sum() / (4 * np.pi) - 1) < 1e-13
    f_dst = rg.dst_fraction(land)  # S_destarea @ land
    src_total = np.sum(w.area_a * w.frac_a * land * np.nan_to_num(x))
    dst_total = np.sum(w.area_b * f_dst * np.where(f_dst > 0, y, 0.0))
    assert abs(dst_total - src_total) / abs(src_total) <= 1e-12
    # ESMF areas are great-circle areas, not exact lat-lon areas (about 3e-4 apart, see the shared README):
    # conservation holds only with the weights' own areas, which is why the checks above use w.area_a/b
    assert 1e-5 < np.max(np.abs(w.area_a / ga.area - 1)) < 5e-4
    # a plain field (no mask): sum(area_b * S x) == sum(area_a * frac_a * x)
    assert w.conservation_error(np.nan_to_num(x, nan=250.0)) <= 1e-12
