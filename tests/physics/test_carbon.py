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


def test_in_place_nee_is_the_same_subtraction_without_a_temporary():
    import torch

    rng = np.random.default_rng(1)
    gpp, reco = rng.gamma(2.0, 3.0, 1000), rng.gamma(2.0, 2.0, 1000)
    for conv in SignConvention:
        out = np.empty_like(gpp)
        got = nee_from_components(gpp, reco, conv, out=out)
        assert got is out and np.array_equal(out, nee_from_components(gpp, reco, conv))
        tg, tr = torch.from_numpy(gpp), torch.from_numpy(reco)
        tout = torch.empty_like(tg)
        assert nee_from_components(tg, tr, conv, out=tout) is tout
        assert torch.equal(tout, nee_from_components(tg, tr, conv))
