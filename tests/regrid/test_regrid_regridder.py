"""Regridder: backends agree, torch equals scipy, masks and land fractions, unmapped cells, the weight cache,
curvilinear grids and meshes."""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest

from tamrl_coupler.errors import RegridError
from tamrl_coupler.regrid import Grid, Regridder

# skipped on a user's machine without cdo; in CI (installed by scripts/install.sh) a missing cdo fails the test
needs_cdo = pytest.mark.skipif(shutil.which("cdo") is None and not os.environ.get("CI"),
                               reason="cdo not on PATH (apt install cdo)")
A, B = "r144x96", "r360x180"


def smooth(g: Grid) -> np.ndarray:
    return 280 + 20 * np.cos(np.deg2rad(g.lat)) ** 2 + 3 * np.sin(np.deg2rad(2 * g.lon)) * np.cos(np.deg2rad(g.lat))


@needs_cdo
def test_native_and_cdo_weights_agree():
    a, b = Grid.from_name(A), Grid.from_name(B)
    for method, tol in (("conservative", 1e-10), ("bilinear", 1e-12)):
        n = Regridder(a, b, method, backend="native")
        c = Regridder(a, b, method, backend="cdo")
        away = np.abs(b.lat) < 89.0  # CDO treats the polar caps its own way for bilinear
        assert np.max(np.abs(n(smooth(a)) - c(smooth(a)))[away]) < tol * 300, method
    # nearest: ties may go either way, but the distance chosen is the same
    n = Regridder(a, b, "nearest", backend="native").matrix
    c = Regridder(a, b, "nearest", backend="cdo").matrix
    dn = np.linalg.norm(a.xyz()[n.indices] - b.xyz(), axis=1)
    dc = np.linalg.norm(a.xyz()[c.indices] - b.xyz(), axis=1)
    assert np.max(np.abs(dn - dc)) < 1e-12


@pytest.mark.parametrize("kernel", ["auto", "torch"])
def test_torch_matches_scipy(kernel):
    """CPU tensors go through scipy zero-copy ('auto'); the torch sparse CSR kernel (the GPU path) is forced and
    checked on CPU with 'torch'."""
    import torch

    from tamrl_coupler.regrid.sparse_apply import TorchSparse

    torch.set_num_threads(1)
    rg = Regridder(A, B, "conservative", backend="native", torch_kernel=kernel)
    x = np.random.default_rng(3).standard_normal((4, 13824))
    x[1, ::5] = np.nan
    for kw in ({}, {"skipna": True}, {"src_fraction": np.random.default_rng(4).random(13824)}):
        ref = Regridder(A, B, "conservative", backend="native")(x, **kw)
        got = rg(torch.from_numpy(x), **kw)
        assert isinstance(got, torch.Tensor) and got.shape == (4, 64800)
        assert np.allclose(got.numpy(), ref, rtol=1e-13, atol=1e-13, equal_nan=True), kw
    y32 = rg(torch.from_numpy(x[0]).float().reshape(96, 144))  # grid-shaped float32 input
    assert y32.dtype == torch.float32 and y32.shape == (180, 360)
    assert np.allclose(y32.numpy().ravel(), rg(x[0]), rtol=1e-5, atol=1e-5)
    if kernel == "torch":
        assert set(k[0].type for k in rg._torch) == {"cpu"}
        assert TorchSparse(rg.matrix).device.type == ("cuda" if torch.cuda.is_available() else "cpu")
        op = TorchSparse(rg.matrix, device="cpu")
        assert op.device.type == "cpu" and op(torch.from_numpy(x[:1])).shape == (1, 64800)


def test_field_shape_errors():
    rg = Regridder(A, B, "bilinear", backend="native")
    with pytest.raises(RegridError, match=r"field of shape \(5,\) does not end in the source grid's size 13824"):
        rg(np.zeros(5))
    with pytest.raises(RegridError, match="src_fraction has 3 values"):
        rg(np.zeros(13824), src_fraction=np.ones(3))
    assert rg(np.zeros((2, 96, 144))).shape == (2, 180, 360)


def test_unmapped_cells_and_partial_sources():
    src = Grid.regular(np.arange(-59.5, 90), np.arange(0.5, 360))  # GLDAS-like: 60S to 90N
    dst = Grid.from_name(A)
    x = smooth(src)
    y = Regridder(src, dst, "conservative", backend="native")(x)
    south = dst.lat < -60.5
    assert np.isnan(y[south]).all() and np.isfinite(y[~south]).all()
    assert (Regridder(src, dst, "conservative", backend="native", unmapped="zero")(x)[south] == 0).all()
    with pytest.raises(RegridError, match=r"destination cells of 'r144x96' receive no source values .* first is "
                                          r"cell 0 at lat -89.0625"):
        Regridder(src, dst, "conservative", backend="native", unmapped="error")
    yn = Regridder(src, dst, "conservative", backend="native", unmapped="nearest")(x)
    assert np.isfinite(yn).all() and np.array_equal(yn[~south], y[~south])


def test_land_mask_and_land_fraction():
    src, dst = Grid.from_name(B), Grid.from_name(A)
    rng = np.random.default_rng(5)
    land = (rng.random(src.size) < 0.3).astype(np.int8)
    x = smooth(src)
    # conservative_normed (xESMF's name): the mean over the land part of each cell
    masked = Regridder(src.with_mask(land), dst, "conservative_normed", backend="native")
    garbage = np.where(land == 1, x, 1e30)  # values on masked cells must not leak
    y = masked(garbage)
    # conservative (ESMF's destarea): the mean over the whole cell, water counted as zero
    dest = Regridder(src.with_mask(land), dst, "conservative", backend="native")(garbage)
    np.testing.assert_allclose(dest[np.isfinite(y)], (y * masked.dst_fraction())[np.isfinite(y)], rtol=1e-12)
    ref = Regridder(src, dst, "conservative", backend="native")(np.where(land == 1, x, np.nan), skipna=True)
    ok = np.isfinite(ref)
    assert np.array_equal(ok, np.isfinite(y)) and np.max(np.abs(y[ok] - ref[ok])) < 1e-10
    # fluxes per unit land with a fractional land cover: conservative to round-off with the weights' areas
    frac = rng.random(src.size)
    rg = Regridder(src, dst, "conservative", backend="native")
    yf = rg(x, src_fraction=frac)
    fd = rg.dst_fraction(frac)
    w = rg.weights
    total = np.sum(w.area_a * w.frac_a * frac * x)
    assert abs(np.sum(w.area_b * fd * yf) - total) / total < 1e-13
    # states bilinear with a land mask: masked corners are dropped, the rest renormalised
    bil = Regridder(src.with_mask(land), dst, "bilinear", backend="native")
    yb = bil(np.where(land == 1, x, 1e30))
    assert np.nanmax(yb) < 400 and np.isfinite(yb).mean() > 0.5


def test_weight_cache(tmp_path):
    a, b = Grid.from_name(A), Grid.from_name(B)
    first = Regridder(a, b, "conservative", backend="native", cache_dir=tmp_path)
    files = list(tmp_path.glob("*.nc"))
    assert len(files) == 1 and first.backend == "native"
    os.utime(files[0], (1, 1))
    again = Regridder(a, b, "conservative", backend="native", cache_dir=tmp_path)
    assert again.backend == "native (cached)" and os.stat(files[0]).st_mtime == 1  # read, not rewritten
    assert (again.matrix != first.matrix).nnz == 0
    Regridder(a, b, "bilinear", backend="native", cache_dir=tmp_path)
    Regridder(a.with_mask(np.arange(a.size) % 2), b, "conservative", backend="native", cache_dir=tmp_path)
    assert len(list(tmp_path.glob("*.nc"))) == 3  # keyed by method and by the grids' masks


@pytest.mark.parametrize("tamper", ["scaled_S", "shuffled_col"])
def test_an_edited_cache_file_is_never_used(tmp_path, tamper, caplog):
    """A cached weight file whose matrix no longer matches its SHA-256 (a scaled S, a shuffled col: either changes
    every flux) is reported and made again, never used."""
    import netCDF4

    a, b = Grid.from_name(A), Grid.from_name(B)
    first = Regridder(a, b, "conservative", backend="native", cache_dir=tmp_path)
    (path,) = tmp_path.glob("*.nc")
    with netCDF4.Dataset(path, "a") as ds:
        if tamper == "scaled_S":
            ds["S"][:] = ds["S"][:] * 1.01
        else:
            col = ds["col"][:]
            ds["col"][:] = np.roll(col, 1)
    with caplog.at_level("WARNING", logger="tamrl_coupler.regrid"):
        again = Regridder(a, b, "conservative", backend="native", cache_dir=tmp_path)
    assert again.backend == "native" and "not used" in caplog.text and path.name in caplog.text
    assert (again.matrix != first.matrix).nnz == 0
    assert Regridder(a, b, "conservative", backend="native", cache_dir=tmp_path).backend == "native (cached)"


def _rotated_curvilinear(n=24):
    """A regional curvilinear grid: a lat-lon box turned by 20 degrees about its centre (corners included)."""
    i = np.arange(n + 1) - n / 2
    u, v = np.meshgrid(i * 1.0, i * 1.0, indexing="ij")
    c, s = np.cos(np.deg2rad(20)), np.sin(np.deg2rad(20))
    vlat, vlon = 45 + c * u - s * v, 10 + s * u + c * v
    clat = (vlat[:-1, :-1] + vlat[1:, 1:] + vlat[:-1, 1:] + vlat[1:, :-1]) / 4
    clon = (vlon[:-1, :-1] + vlon[1:, 1:] + vlon[:-1, 1:] + vlon[1:, :-1]) / 4
    return Grid.curvilinear(clat, clon, vlat, vlon, name="rotated")


@needs_cdo
def test_curvilinear_and_mesh_with_cdo():
    curv = _rotated_curvilinear()
    glob = Grid.from_name(B)
    there = Regridder(glob, curv, "conservative", backend="cdo")
    w = there.weights
    x = smooth(glob)
    y = there(x)
    assert np.isfinite(y).all() and np.max(np.abs(y - smooth(curv))) < 0.5
    assert np.allclose(w.frac_b, 1.0, atol=1e-9)  # every rotated cell lies inside the global grid
    assert np.max(np.abs(w.area_b / curv.area - 1)) < 1e-6  # CDO's great-circle cell areas are ours
    assert np.max(np.abs(np.asarray(w.matrix.sum(axis=1)).ravel() - 1)) < 1e-9
    active = w.frac_a > 0  # conservation with CDO's own areas
    total = np.sum(w.area_a[active] * w.frac_a[active] * x[active])
    assert abs(np.sum(w.area_b * w.frac_b * y) - total) / total < 1e-12
    mesh = Grid.unstructured(curv.lat, curv.lon, curv.corner_lat, curv.corner_lon, name="mesh")
    ym = Regridder(glob, mesh, "conservative", backend="cdo")(x)
    assert np.allclose(ym, y, rtol=1e-12)  # the same cells described as an unstructured mesh
    yb = Regridder(glob, curv, "bilinear", backend="cdo")(x)
    assert np.max(np.abs(yb - smooth(curv))) < 0.1
    towers = Grid.points([45.0, 46.1], [10.0, 9.5])
    yt = Regridder(curv, towers, "bilinear", backend="cdo")(smooth(curv))
    assert np.max(np.abs(yt - smooth(towers))) < 0.1
