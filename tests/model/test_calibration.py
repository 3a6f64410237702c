"""The spread calibration: recovers a known error model, covers 90 % on new data, survives the header round trip."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tamrl_coupler.errors import CheckpointError
from tamrl_coupler.model.calibration import SpreadCalibration, interval_coverage
from tamrl_coupler.vocabulary import IGBP_CLASSES


def _synthetic(n: int, seed: int):
    """Errors whose sd grows with GPP and is larger for one class (as at real towers: crops err most)."""
    rng = np.random.default_rng(seed)
    gpp = rng.gamma(2.0, 2.0, n)
    reco = 0.6 * gpp + rng.gamma(2.0, 0.5, n)
    igbp = rng.choice([0.0, 11.0, np.nan], n)  # ENF, CRO, unknown
    sd_g = 0.4 + 0.3 * gpp
    sd_g = np.where(igbp == 11, 2.0 * sd_g, sd_g)
    sd_r = 0.3 + 0.2 * reco
    obs = {"gpp": gpp + rng.normal(size=n) * sd_g, "reco": reco + rng.normal(size=n) * sd_r}
    obs["nee"] = obs["gpp"] - obs["reco"]
    return {"gpp": gpp, "reco": reco, "nee": gpp - reco}, obs, igbp, sd_g


def test_fit_recovers_the_error_model_and_covers_90_percent_out_of_sample():
    pred, obs, igbp, sd_g = _synthetic(8000, 0)
    cal = SpreadCalibration.fit(pred, obs, igbp, fitted_on="synthetic")
    p2, o2, i2, sd2 = _synthetic(8000, 1)
    sig = cal.sigma(p2["gpp"], p2["reco"], i2)
    for v in ("gpp", "reco", "nee"):
        assert 0.88 <= interval_coverage(p2[v], sig[v], o2[v]) <= 0.92, v
    crops = i2 == 11
    assert 0.87 <= interval_coverage(p2["gpp"][crops], sig["gpp"][crops], o2["gpp"][crops]) <= 0.93
    assert np.median(sig["gpp"][crops] / sd2[crops]) == pytest.approx(1.0, abs=0.1)
    # a spread that ignored the class would under-cover the crops
    flat = SpreadCalibration.fit(p2, o2, np.full(len(i2), np.nan)).sigma(p2["gpp"], p2["reco"], i2)
    assert interval_coverage(p2["gpp"][crops], flat["gpp"][crops], o2["gpp"][crops]) < 0.85


def test_header_round_trip_and_errors():
    pred, obs, igbp, _ = _synthetic(2000, 2)
    cal = SpreadCalibration.fit(pred, obs, igbp, fitted_on="cv")
    back = SpreadCalibration.from_dict(json.loads(json.dumps(cal.to_dict())))
    for v in ("gpp", "reco", "nee"):
        np.testing.assert_array_equal(back.coef[v], cal.coef[v])
    d = cal.to_dict()
    d["classes"] = list(IGBP_CLASSES[:-1])
    with pytest.raises(CheckpointError, match="classes"):
        SpreadCalibration.from_dict(d)
    d = cal.to_dict()
    del d["coef"]["nee"]
    with pytest.raises(CheckpointError, match="nee"):
        SpreadCalibration.from_dict(d)
    with pytest.raises(CheckpointError, match="out-of-fold"):
        SpreadCalibration.fit({k: v[:5] for k, v in pred.items()}, {k: v[:5] for k, v in obs.items()}, igbp[:5])
