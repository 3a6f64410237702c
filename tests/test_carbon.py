from __future__ import annotations

import numpy as np
import pytest

from tamrl_coupler.physics.carbon import SignConvention, balance_residual, convert_nee, nee_from_components


def test_balance_identity_is_exact_in_both_conventions():
    rng = np.random.default_rng(0)
    gpp, reco = rng.gamma(2.0, 3.0, 10_000), rng.gamma(2.0, 2.0, 10_000)
    for conv in SignConvention:
        nee = nee_from_components(gpp, reco, conv)
        assert np.array_equal(balance_residual(gpp, reco, nee, conv), np.zeros_like(gpp))
    up = nee_from_components(gpp, reco, "fluxnet")
    assert np.array_equal(convert_nee(up, "fluxnet", "uptake_positive"), gpp - reco)


def test_unknown_convention_is_named():
    with pytest.raises(ValueError, match="'sideways'"):
        SignConvention.parse("sideways")
    assert SignConvention.parse("fluxnet").cf_positive == "up"
