"""Monthly means of a daily model's fluxes: complete months only, exact to rounding, NEE recomputed exactly."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tamrl_coupler.errors import InputError
from tamrl_coupler.model.aggregate import monthly_means


def test_monthly_means_by_hand():
    time = np.arange(np.datetime64("2015-01-01"), np.datetime64("2015-03-11")).astype("datetime64[ns]")  # to 10 March
    rng = np.random.default_rng(0)
    gpp = rng.gamma(2.0, 3.0, (2, len(time))) * 1e3 ** rng.random((2, len(time)))  # wide range: rounding shows
    reco = rng.gamma(2.0, 2.0, (2, len(time)))
    gpp[1, 40] = np.nan  # site 1 misses 10 February
    out, months = monthly_means({"gpp": gpp, "reco": reco, "nee": gpp * 0}, time, "uptake_positive")
    assert months.tolist() == [np.datetime64("2015-01"), np.datetime64("2015-02"), np.datetime64("2015-03")]
    for s in range(2):
        assert abs(out["gpp"][s, 0] - math.fsum(gpp[s, :31]) / 31) <= 1e-12 * abs(out["gpp"][s, 0])
    assert abs(out["reco"][0, 1] - math.fsum(reco[0, 31:59]) / 28) <= 1e-12
    assert np.isnan(out["gpp"][1, 1]) and np.isfinite(out["reco"][1, 1])  # a day missing: no February GPP
    assert np.isnan(out["gpp"][:, 2]).all()  # March is not complete in the data
    np.testing.assert_array_equal(out["nee"], out["gpp"] - out["reco"])  # recomputed, not averaged
    atm, _ = monthly_means({"gpp": gpp, "reco": reco, "nee": gpp * 0}, time, "atmosphere_positive")
    np.testing.assert_array_equal(atm["nee"], out["reco"] - out["gpp"])
    with pytest.raises(InputError, match="'gpp'"):
        monthly_means({"gpp": gpp[:, :5]}, time, "uptake_positive")
