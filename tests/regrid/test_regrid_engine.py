"""The native conservative engine on every kind of grid pair (great-circle edges, exact overlaps on the sphere):
conservation to 1e-12 with the areas the weights were made with, those areas checked against an independent
formula, every source cell of a global destination given away completely, agreement with ESMF's own weights, and a
backend result that does not conserve refused."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import require_tools

from tamrl_coupler.errors import RegridError
from tamrl_coupler.regrid import Grid, Regridder, util
from tamrl_coupler.regrid.backends import check_conservation, native
from tamrl_coupler.regrid.sphere import spherical_polygon_area


def smooth(g: Grid) -> np.ndarray:
    return 280 + 20 * np.cos(np.deg2rad(g.lat)) ** 2 + 3 * np.sin(np.deg2rad(2 * g.lon)) * np.cos(np.deg2rad(g.lat))


PAIRS = {  # small versions of the benchmark's pairs (bench/regrid_engine.py runs them at full size)
    "1deg->0.25deg as 10deg->2.5deg, great circles": (lambda: Grid.from_name("r36x18"),
                                                      lambda: Grid.from_name("r144x72")),
    "regional rotated pole -> global": (lambda: util.rotated_pole_grid(40, 30, 0.5, 39.25, -162.0),
                                        lambda: Grid.from_name("r72x36")),
    "cubed sphere C12 -> global": (lambda: util.cubed_sphere(12), lambda: Grid.from_name("r72x36")),
    "global -> cubed sphere C12": (lambda: Grid.from_name("r72x36"), lambda: util.cubed_sphere(12)),
}


@pytest.mark.parametrize("pair", list(PAIRS))
def test_native_engine_conserves_on_every_grid_pair(pair):
    src, dst = PAIRS[pair][0](), PAIRS[pair][1]()
    w = native.conservative(src, dst, edges="great_circle")
    # the areas the weights were made with are the cells' great-circle areas (an independent formula: a fan of
    # Eriksson triangles in 3-D, not the engine's gnomonic planes)
    for mine, g in ((w.area_a, src), (w.area_b, dst)):
        ref = spherical_polygon_area(g.corner_lat, g.corner_lon)
        assert np.max(np.abs(mine / ref - 1)) < 1e-11, pair
    # the destination covers the sphere: every source cell is given away completely
    assert np.max(np.abs(w.frac_a - 1)) < 1e-12, pair
    # destination cells are covered completely where the source is global, never more than completely
    assert w.frac_b.max() < 1 + 1e-12
    if abs(w.area_a.sum() / (4 * np.pi) - 1) < 1e-12:
        assert np.max(np.abs(w.frac_b - 1)) < 1e-12, pair
    # conservation of a field with the weights' areas (fraction of the destination covered: its frac_b)
    x = smooth(src)
    y = w.matrix @ x  # destarea: mean over the whole destination cell
    total = np.sum(w.area_a * x)
    assert abs(np.sum(w.area_b * y) - total) / total < 1e-12, pair
    # and through the Regridder (conservative_normed: per covered area) with its dst_fraction (two lat-lon grids:
    # lat-lon edges and exact lat-lon areas, the weights' own)
    rg = Regridder(src, dst, "conservative_normed")
    assert rg.backend == "native"
    yn = rg(x)
    cover = rg.dst_fraction()
    ok = cover > 0
    wr = rg.weights
    total_rg = np.sum(wr.area_a * wr.frac_a * x)
    assert abs(np.sum((wr.area_b * cover * yn)[ok]) - total_rg) / total_rg < 1e-12, pair


def test_great_circle_weights_equal_esmf_regridweightgen(shared):
    """The shared ESMF_RegridWeightGen file (r144x96 -> r360x180, grids starting at -180 degrees): the same
    entries, the same weights to 3e-13, the same cell areas to 3e-14."""
    from tamrl_coupler.regrid import Weights

    base = shared("data/weights/esmf_r144x96_to_r360x180_conserve.nc").parent
    esmf = Weights.read(base / "esmf_r144x96_to_r360x180_conserve.nc")
    a, b = Grid.from_file(base / "r144x96.nc"), Grid.from_file(base / "r360x180.nc")
    a.mask = b.mask = None  # the files' masks are all ones
    w = native.conservative(a, b, edges="great_circle")
    assert w.matrix.nnz == esmf.matrix.nnz
    assert abs(w.matrix - esmf.matrix).max() < 3e-13
    assert np.max(np.abs(w.area_a / esmf.area_a - 1)) < 3e-14 and np.max(np.abs(w.area_b / esmf.area_b - 1)) < 3e-13


def test_a_non_convex_cell_is_cut_into_triangles():
    """A concave destination cell inside a regional source: its overlaps add up to its area."""
    lat = np.array([[40.0, 40.0, 44.0, 43.0, 44.0]])
    lon = np.array([[10.0, 14.0, 14.0, 12.0, 10.0]])  # the fourth vertex dents the top edge
    dart = Grid.unstructured([42.0], [12.0], lat, lon, name="dart")
    box = Grid.regular(np.arange(35.5, 50), np.arange(5.5, 20), name="box")
    w = native.conservative(box, dart)
    assert abs(w.frac_b[0] - 1) < 1e-12
    assert abs(w.area_b[0] / spherical_polygon_area(lat, lon)[0] - 1) < 1e-12


def test_cells_larger_than_the_engine_takes_are_named():
    big = Grid.unstructured([0.0], [0.0], [[-80.0, -80.0, 80.0, 80.0]], [[-80.0, 80.0, 80.0, -80.0]], name="big")
    with pytest.raises(RegridError, match="grid 'big': cell 0 has a corner .* degrees from its centre"):
        native.conservative(big, Grid.from_name("r36x18"))


def test_a_backend_result_that_does_not_conserve_is_refused():
    src, dst = util.rotated_pole_grid(20, 16, 1.0, 39.25, -162.0), Grid.from_name("r72x36")
    w = native.conservative(src, dst)
    check_conservation(w, src, dst, "native")  # the engine's own result passes
    bad = w.to_normalization("destarea")
    bad.matrix = bad.matrix.copy()
    bad.matrix.data[:7] *= 1.01  # a few overlaps counted 1 % too large
    with pytest.raises(RegridError, match=r"native backend, conservative weights 'rotated' \(16, 20\) -> 'r72x36' "
                                          r"\(36, 72\): refused, the area integral is off by [0-9.]+e-0[0-9]"):
        check_conservation(bad, src, dst, "native")


def test_cdo_regional_curvilinear_source_is_refused_and_native_used():
    """CDO 2.1's gencon double-counts overlaps on a regional curvilinear source's edge (10 % of the integral here):
    forced, the result is refused naming the pair; by default the native engine makes exact weights."""
    require_tools("cdo")
    src, dst = util.rotated_pole_grid(40, 30, 0.5, 39.25, -162.0), Grid.from_name("r360x180")
    with pytest.raises(RegridError, match=r"cdo backend, conservative weights 'rotated' \(30, 40\) -> 'r360x180' "
                                          r"\(180, 360\): refused, the area integral is off by 1\.[0-9]+e-01"):
        Regridder(src, dst, "conservative", backend="cdo")
    rg = Regridder(src, dst, "conservative")
    assert rg.backend == "native" and np.max(np.abs(rg.weights.frac_a - 1)) < 1e-12
