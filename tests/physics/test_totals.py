"""Global and band totals (physics/totals.py) against a small grid computed by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tamrl_coupler.physics.totals import (
    BANDS,
    TotalsAccumulator,
    band_index,
    exact_sums,
    format_table,
    totals_attributes,
)


def test_totals_by_hand():
    # three cells: 1e12 m2 at 60N (land fraction 0.5), 2e12 m2 at 10S (land 1), 4e12 m2 at 40S (land 0.25)
    area = np.array([1e12, 2e12, 4e12])
    lf = np.array([0.5, 1.0, 0.25])
    lat = np.array([60.0, -10.0, -40.0])
    acc = TotalsAccumulator(area * lf, lat)
    gpp = np.array([2.0, 8.0, 1.0])  # gC m-2 d-1 per m2 of land
    reco = np.array([1.5, 7.0, 1.2])
    nee = gpp - reco
    sd = np.array([1.0, 2.0, 0.5])
    acc.add(np.datetime64("2001-01-01"), 31.0, {"gpp": gpp, "reco": reco, "nee": nee}, {"gpp": sd})
    acc.add(np.datetime64("2001-02-01"), 28.0, {"gpp": gpp, "reco": reco, "nee": nee}, {"gpp": sd})
    # January GPP by hand: (2*0.5e12 + 8*2e12 + 1*1e12) g/d * 31 d = 18e12 * 31 g = 0.558 PgC
    jan = acc.by("M")
    assert jan.total["gpp"][0] == pytest.approx(0.558, rel=1e-14)
    assert jan.total["nee"][0] == pytest.approx((0.5 * 0.5e12 + 1.0 * 2e12 - 0.2 * 1e12) * 31 / 1e15, rel=1e-14)
    year = acc.by("Y")
    assert year.labels == ["2001"] and year.days[0] == 59
    assert year.total["gpp"][0] == pytest.approx(18e12 * 59 / 1e15, rel=1e-14)
    # bands: 40S is in the first band, 10S in the second, 60N in the last
    assert band_index(lat).tolist() == [len(BANDS) - 1, 1, 0]
    assert year.band["gpp"][0].tolist() == pytest.approx([1e12 * 59 / 1e15, 16e12 * 59 / 1e15, 0, 0,
                                                          1e12 * 59 / 1e15])
    # spreads: fully correlated = sum; independent cells = quadrature of each cell's time sum
    cell = sd * area * lf * 59
    assert year.spread[("gpp", "correlated")][0] == pytest.approx(cell.sum() / 1e15, rel=1e-14)
    assert year.spread[("gpp", "independent")][0] == pytest.approx(math.sqrt((cell ** 2).sum()) / 1e15, rel=1e-14)
    attrs = totals_attributes(acc)
    assert float(attrs["totals_annual_gpp_PgC"]) == pytest.approx(18e12 * 59 / 1e15, rel=1e-9)
    text = "\n".join(format_table(year, "per year"))
    assert "2001" in text and "GPP" in text


def test_order_of_cells_does_not_change_a_total():
    rng = np.random.default_rng(0)
    n = 5000
    w, lat, g = rng.uniform(1e8, 1e10, n), rng.uniform(-60, 80, n), rng.uniform(0, 12, n)
    p = rng.permutation(n)
    a, b = TotalsAccumulator(w, lat), TotalsAccumulator(w[p], lat[p])
    for acc, idx in ((a, np.arange(n)), (b, p)):
        acc.add(np.datetime64("2001-01-01"), 1.0, {"gpp": g[idx], "reco": g[idx] * 0.8, "nee": g[idx] * 0.2})
    assert a.by("Y").total["gpp"][0] == b.by("Y").total["gpp"][0]
    assert np.array_equal(a.by("Y").band["gpp"], b.by("Y").band["gpp"])


def test_exact_sums_equal_fsum_bit_for_bit():
    """The vectorised exact sum is math.fsum's correctly rounded result, per group and in all, on values spanning
    60 orders of magnitude with both signs, zeros and cancellation (where a plain sum loses every digit)."""
    rng = np.random.default_rng(3)
    for trial in range(100):
        n = int(rng.integers(1, 3000))
        v = rng.standard_normal(n) * 10.0 ** rng.uniform(-30, 30, n)
        v[rng.integers(0, n, n // 4)] = 0.0
        groups = rng.integers(0, 5, n)
        total, per_group = exact_sums(v, groups, 5)
        assert total == math.fsum(v.tolist()), trial
        assert per_group.tolist() == [math.fsum(v[groups == i].tolist()) for i in range(5)], trial
    cancel = np.array([1e20, 1.0, -1e20, 3.0e-8])
    assert exact_sums(cancel)[0] == 1.0 + 3.0e-8 and cancel.sum() != exact_sums(cancel)[0]
    assert exact_sums(np.zeros(0))[0] == 0.0
