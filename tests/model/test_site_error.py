"""The site-level error model: novelty of a task embedding against the training towers', the random-offset fit
recovering known day and site variances, the header round trip, the CRPS."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tamrl_coupler.errors import CheckpointError
from tamrl_coupler.model.novelty import EmbeddingNovelty
from tamrl_coupler.model.site_error import SiteErrorModel
from tamrl_coupler.training.site_error_fit import crps_gaussian, fit_coefficients
from tamrl_coupler.vocabulary import IGBP_CLASSES


def test_novelty_is_distance_to_the_nearest_training_towers_in_their_own_units():
    # one member, four towers on a line at 0, 1, 2, 3: each tower's mean distance to its 3 nearest others is
    # (1+2+3)/3 = 2 (ends) or (1+1+2)/3 = 4/3 (middle); the median is 5/3
    c = np.array([[[0.0, 0], [1, 0], [2, 0], [3, 0]]], dtype=np.float32)
    nov = EmbeddingNovelty.fit(c)
    assert nov.scale[0] == pytest.approx(5 / 3)
    z = np.array([[[1.0, 0.0]], [[10.0, 0.0]], [[np.nan, 0.0]]])  # (3 cells, 1 member, 2)
    got = nov(z)
    assert got[0] == pytest.approx((0 + 1 + 1) / 3 / (5 / 3))
    assert got[1] == pytest.approx((7 + 8 + 9) / 3 / (5 / 3))
    assert np.isnan(got[2])
    np.testing.assert_allclose(nov.torch(torch.as_tensor(z[:2])).numpy(), got[:2], rtol=1e-12)
    # two members: the mean of the members' novelties
    two = EmbeddingNovelty.fit(np.concatenate([c, 2 * c]))
    np.testing.assert_allclose(two(np.concatenate([z[:1], 2 * z[:1]], axis=1)), got[:1], rtol=1e-6)
    assert EmbeddingNovelty.from_dict(nov.to_dict()).centres.tolist() == nov.centres.tolist()
    with pytest.raises(CheckpointError, match="towers >= 2"):
        EmbeddingNovelty.fit(c[:, :1])


def test_random_offset_fit_recovers_known_day_and_site_parts():
    rng = np.random.default_rng(0)
    n_sites, n_days = 80, 400
    novelty = np.exp(rng.normal(0, 0.5, n_sites))
    sigma_site = 0.8 * novelty  # log sigma_site = log 0.8 + 1 * log novelty
    gpp = rng.uniform(0, 10, (n_sites, n_days))
    sigma_day = 0.5 * (1 + gpp) ** 0.5  # log sigma_day = log 0.5 + 0.5 log1p(gpp)
    err = rng.normal(0, sigma_site)[:, None] + rng.normal(size=(n_sites, n_days)) * sigma_day
    pred = {"gpp": gpp, "reco": np.ones_like(gpp), "nee": gpp - 1}
    obs = {v: p - err for v, p in pred.items()}  # every flux with the same errors
    member_sd = {v: np.full_like(gpp, 0.3) for v in pred}
    day, site = fit_coefficients(pred, member_sd, np.repeat(novelty[:, None], n_days, 1), obs,
                                                np.full((n_sites, 1), np.nan), np.arange(n_sites)[:, None])
    # the intercept, the Reco term and the member-sd term are collinear here (constant Reco and member sd): compare
    # the fitted sigmas themselves
    m = SiteErrorModel(day, site, EmbeddingNovelty.fit(np.zeros((1, 2, 1)) + [[[0.0], [1.0]]]))
    g = np.array([0.0, 4.0, 9.0])
    d, s_ = m.parts(g, np.ones(3), {v: np.full(3, 0.3) for v in pred}, np.array([0.5, 1.0, 2.0]),
                    np.full(3, np.nan))["gpp"]
    np.testing.assert_allclose(d, 0.5 * np.sqrt(1 + g), rtol=0.05)
    np.testing.assert_allclose(s_, 0.8 * np.array([0.5, 1.0, 2.0]), rtol=0.25)
    assert site["gpp"][1] == pytest.approx(1.0, abs=0.25)  # the novelty slope itself


def _model(n_members=2, k=5, e=3):
    rng = np.random.default_rng(1)
    n = len(IGBP_CLASSES)
    day = {v: np.r_[-0.5, 0.3, 0.2, 0.1, rng.normal(0, 0.1, n)] for v in ("gpp", "reco", "nee")}
    site = {v: np.r_[-1.0, 0.7, 0.2, 0.1, rng.normal(0, 0.1, n)] for v in ("gpp", "reco", "nee")}
    return SiteErrorModel(day, site, EmbeddingNovelty.fit(rng.normal(size=(n_members, k, e))), "test")


def test_sigma_numpy_and_torch_agree_and_the_header_round_trips():
    m = _model()
    rng = np.random.default_rng(2)
    z = rng.normal(size=(6, 2, 3))
    gpp, reco = rng.uniform(0, 8, 6), rng.uniform(0, 5, 6)
    sd = {v: rng.uniform(0, 1, 6) for v in ("gpp", "reco", "nee")}
    igbp = np.array([0, 3, np.nan, 11, 16, 2.0])
    want = m.sigma(gpp, reco, sd, m.novelty(z), igbp)
    got = m.sigma_torch(torch.as_tensor(gpp), torch.as_tensor(reco), {v: torch.as_tensor(a) for v, a in sd.items()},
                        torch.as_tensor(z, dtype=torch.float32), torch.as_tensor(igbp))
    for v in want:
        np.testing.assert_allclose(got[v].numpy(), want[v], rtol=1e-6)
        day, site = m.parts(gpp, reco, sd, m.novelty(z), igbp)[v]
        np.testing.assert_allclose(want[v] ** 2, day**2 + site**2, rtol=1e-12)
    back = SiteErrorModel.from_dict(m.to_dict())
    for v in want:
        np.testing.assert_array_equal(back.day[v], m.day[v])
    bad = m.to_dict()
    bad["site"]["nee"] = bad["site"]["nee"][:-1]
    with pytest.raises(CheckpointError, match="nee"):
        SiteErrorModel.from_dict(bad)


def test_crps_of_a_gaussian():
    # CRPS(N(0, 1), 0) = 2 phi(0) - 1/sqrt(pi) = (sqrt(2) - 1) / sqrt(pi)
    assert crps_gaussian(np.array(0.0), np.array(1.0), np.array(0.0)) == pytest.approx(
        (np.sqrt(2) - 1) / np.sqrt(np.pi))
    # far from the observation CRPS tends to |error| - sigma / sqrt(pi)
    assert crps_gaussian(np.array(0.0), np.array(0.1), np.array(5.0)) == pytest.approx(5 - 0.1 / np.sqrt(np.pi))
