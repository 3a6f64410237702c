"""Budget modes' arithmetic (physics/budget.py): GPP untouched, NEE = GPP - Reco exact, the annual balance on a
repeated synthetic year, the prior's first year, a global sink met exactly, no look-ahead."""

from __future__ import annotations

import numpy as np
import pytest

from tamrl_coupler.physics.budget import (
    AnnualExpectation,
    BudgetMode,
    BudgetSpec,
    apply_budget,
    global_annual_gpp,
    month_ends,
    sink_share,
)
from tamrl_coupler.physics.carbon import nee_from_components


def synthetic_year(n: int = 5, years: int = 3, seed: int = 0):
    """Daily rates of n cells with a seasonal GPP and a Reco that is ~80 % of GPP with its own phase (a sink)."""
    rng = np.random.default_rng(seed)
    starts = np.arange(np.datetime64("2001-01-01"), np.datetime64(f"{2001 + years}-01-01"))
    doy = (starts - starts.astype("datetime64[Y]")).astype(int)
    doy = np.minimum(doy, 364)  # the same year repeated (no leap years in 2001-2003)
    season = np.clip(np.sin(2 * np.pi * (doy - 80) / 365), 0, None)
    amp = rng.uniform(2, 10, n)
    gpp = amp[:, None] * season[None, :] + 0.1
    reco = 0.8 * amp[:, None] * (0.3 + 0.7 * np.clip(np.sin(2 * np.pi * (doy - 100) / 365), 0, None))[None, :]
    return starts, gpp, reco


def test_balanced_exact_from_second_year_on_a_repeated_year():
    starts, gpp, reco = synthetic_year()
    adj, _ = apply_budget(gpp, reco, starts, "daily", BudgetSpec(BudgetMode.BALANCED))
    nee = nee_from_components(gpp, adj)
    years = starts.astype("datetime64[Y]")
    for y, want_exact in zip(np.unique(years), (False, True, True), strict=True):
        s = years == y
        rel = abs(nee[:, s].sum(axis=1)) / gpp[:, s].sum(axis=1)
        if want_exact:
            assert rel.max() < 1e-12, rel
        else:  # the first year without a prior: factor 1 in January, then year-to-date months only
            assert rel.max() > 1e-3
    # GPP is untouched and NEE is one subtraction of the adjusted Reco
    assert np.array_equal(nee, gpp - adj)


def test_prior_balances_the_first_year_and_reco_keeps_its_shape():
    starts, gpp, reco = synthetic_year(years=1)
    month = starts.astype("datetime64[M]").astype(int) % 12
    prior = (np.stack([gpp[:, month == m].mean(axis=1) for m in range(12)], 1),
             np.stack([reco[:, month == m].mean(axis=1) for m in range(12)], 1))
    adj, factor = apply_budget(gpp, reco, starts, "daily", BudgetSpec(BudgetMode.BALANCED), prior=prior)
    rel = abs(gpp.sum(axis=1) - adj.sum(axis=1)) / gpp.sum(axis=1)
    assert rel.max() < 1e-3  # the prior's February has 28.24 days: not bit-exact, but within 0.1 %
    # one factor per month: Reco's shape within each month is kept exactly
    for m in range(12):
        f = factor[:, month == m]
        assert (f == f[:, :1]).all()
    assert np.allclose(adj / reco, factor)


def test_target_fraction_and_global_sink():
    starts, gpp, reco = synthetic_year()
    y3 = starts >= np.datetime64("2003-01-01")
    adj, _ = apply_budget(gpp, reco, starts, "daily", BudgetSpec(BudgetMode.TARGET, sink_fraction=0.05))
    assert np.allclose((gpp - adj)[:, y3].sum(1), 0.05 * gpp[:, y3].sum(1), rtol=0, atol=1e-9)
    w = np.array([1e12, 2e12, 5e11, 3e12, 1e12])  # m2 of land
    adj, _ = apply_budget(gpp, reco, starts, "daily", BudgetSpec(BudgetMode.TARGET, sink_pgc=0.1), weight_m2=w)
    sink = ((gpp - adj)[:, y3].sum(1) * w).sum() / 1e15  # 0.1 of the cells' 0.27 PgC/yr of GPP
    assert sink == pytest.approx(0.1, rel=1e-9) and (adj >= 0).all()


def test_no_look_ahead_and_as_trained_identity():
    starts, gpp, reco = synthetic_year(years=2)
    spec = BudgetSpec(BudgetMode.BALANCED)
    full, _ = apply_budget(gpp, reco, starts, "daily", spec)
    cut = 400
    part, _ = apply_budget(gpp[:, :cut], reco[:, :cut], starts[:cut], "daily", spec)
    assert np.array_equal(full[:, :cut], part)  # the future does not change the past
    same, f = apply_budget(gpp, reco, starts, "daily", BudgetSpec())
    assert np.array_equal(same, reco) and (f == 1).all()


def test_monthly_periods_and_month_ends():
    months = np.arange(np.datetime64("2001-01"), np.datetime64("2004-01"))
    assert month_ends(months, "M").all()
    days = np.arange(np.datetime64("2001-01-30"), np.datetime64("2001-02-02"))
    assert month_ends(days, "D").tolist() == [False, True, False]
    rng = np.random.default_rng(1)
    gpp = rng.uniform(1, 5, (3, 1))[:, [0] * 36] * (1 + np.sin(np.arange(36) / 12 * 2 * np.pi))
    reco = gpp * 0.7 + 0.5
    adj, _ = apply_budget(gpp, reco, months, "monthly", BudgetSpec(BudgetMode.BALANCED))
    ndays = ((months + 1).astype("datetime64[D]") - months.astype("datetime64[D]")).astype(float)
    y2 = slice(12, 24)
    assert np.allclose((gpp[:, y2] * ndays[y2]).sum(1), (adj[:, y2] * ndays[y2]).sum(1), rtol=1e-12)


def test_expectation_restart_is_exact_and_fsum_is_order_free():
    exp = AnnualExpectation(4)
    rng = np.random.default_rng(2)
    for _ in range(40):
        exp.add(rng.uniform(0, 5, 4), rng.uniform(0.5, 5, 4), 1.0)
    exp.close_month(0)
    exp.update_factor(BudgetSpec(BudgetMode.BALANCED))
    copy = AnnualExpectation(4)
    copy.load_state({k: v.copy() for k, v in exp.state_arrays().items()})
    for k, v in exp.state_arrays().items():
        assert np.array_equal(getattr(copy, k), v)
    values = rng.uniform(0, 1e3, 1000)
    w = rng.uniform(1e8, 1e10, 1000)
    order = rng.permutation(1000)
    assert global_annual_gpp(values, w) == global_annual_gpp(values[order], w[order])


def test_spec_errors():
    with pytest.raises(ValueError, match="exactly one"):
        BudgetSpec(BudgetMode.TARGET)
    with pytest.raises(ValueError, match="takes no sink"):
        BudgetSpec(BudgetMode.BALANCED, sink_pgc=2.0)
    with pytest.raises(ValueError, match="not known"):
        BudgetMode.parse("closed")
    with pytest.raises(ValueError, match="expected a finite global sink"):
        BudgetSpec(BudgetMode.TARGET, sink_pgc=float("nan"))
    # a global sink larger than the run's GPP would make Reco negative: refused when the factor is formed
    big = BudgetSpec(BudgetMode.TARGET, sink_pgc=500.0)
    with pytest.raises(ValueError, match=r"500 PgC/yr is 3.33 x the expected global GPP of 150 PgC/yr"):
        sink_share(big, 150.0e15)
    assert sink_share(big, 600.0e15) == pytest.approx(500.0 / 600.0)
