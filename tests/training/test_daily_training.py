"""The daily recipe's crops (cold ones without history, burn-in without loss) and a short training run that
learns: a few steps on two real towers lower the loss and give a daily ensemble that predicts drivers-only data."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

from tamrl_coupler.data.dataset import FluxDataset
from tamrl_coupler.data.fluxnet_daily import read_fluxnet_daily
from tamrl_coupler.model.daily_ensemble import DailyEnsemble
from tamrl_coupler.model.features import FeatureEncoder, default_drivers
from tamrl_coupler.model.inference import predict_dataset
from tamrl_coupler.settings.model import ModelConfig
from tamrl_coupler.settings.train import LossWeights, TrainConfig
from tamrl_coupler.training.daily import DailyCrops, train_daily_ensemble
from tamrl_coupler.training.loop import training_arrays

FILES = ("FLX_AU-Ade_FLUXNET2015_FULLSET_DD_2007-2009.csv", "FLX_DE-Tha_ICOSWW2020_ERAMET_DD_1996-2020.csv")


@pytest.fixture(scope="module")
def two_towers(shared, tmp_path_factory):
    src = shared("data/fluxnet_daily")
    dst = tmp_path_factory.mktemp("daily")
    for name in (*FILES, "sites.csv"):
        if not (src / name).exists():
            pytest.skip(f"needs {src / name}")
        shutil.copy(src / name, dst / name)
    return read_fluxnet_daily(dst)


def _cfg(**kw) -> TrainConfig:
    mc = ModelConfig(kind="tamrl_daily", hidden=16, encoder_hidden=16, embedding=4, window=12,
                     derived_inputs=["month", "lat", "toa"], optional_drivers=["co2", "igbp", "lwdown"])
    cfg = TrainConfig(model=mc, members=1, steps=30, batch_size=4, crop=120, burn_in=30, lr=1e-2,
                      loss_weights=LossWeights(1.0, 1.0, 1.0), progress=False, **kw)
    cfg.validate()
    return cfg


def test_cold_crops_have_no_history_and_warm_crops_skip_their_burn_in(two_towers):
    torch.set_num_threads(1)
    drivers = default_drivers(("co2", "igbp", "lwdown"), period="daily")
    x, y, mask = training_arrays(two_towers, drivers)
    enc = FeatureEncoder.fit(drivers, x)
    for cold, expect_history in ((0.999, False), (0.0, True)):
        crops = DailyCrops(_cfg(cold_fraction=cold), two_towers, enc, x, y, mask.astype(np.float32))
        rng = np.random.default_rng(1)
        sites = np.array([1] * 8)  # DE-Tha: 25 years, so crops start late in the record
        _, win, _, _, w = crops.batch(sites, rng)
        n = len(enc.cont_idx)
        missing_flags = win[:, 0, :, n:2 * n]  # each slot's missing indicators on the crop's first day
        assert bool((missing_flags == 1).all()) is not expect_history
        if expect_history:
            assert float(w[:, :30].sum()) == 0.0  # burn-in of warm crops carries no loss
        else:
            assert float(w[:, :30].sum()) > 0.0  # cold crops are scored from their first day


def test_short_training_lowers_the_loss_and_predicts_drivers_only(two_towers):
    torch.set_num_threads(1)
    ens, hist = train_daily_ensemble(_cfg(cold_fraction=0.3, slot_dropout=0.15), two_towers)
    assert isinstance(ens, DailyEnsemble) and ens.meta.period == "daily"
    assert hist[0].train_loss[-1] < hist[0].train_loss[0]
    d = two_towers
    days = slice(4018, 4383)  # AU-Ade, 2007
    year = FluxDataset(sites=d.sites[:1], time=d.time[days], period="daily", igbp=d.igbp[:1], lat=d.lat[:1],
                       lon=d.lon[:1], drivers={k: v[:1, days] for k, v in d.drivers.items()}, targets={})
    out = predict_dataset(ens, year)  # drivers only: no flux columns at all
    assert out["gpp"].shape == (1, 365)
    ok = np.isfinite(out["gpp"])
    assert ok.all() and (out["gpp"] >= 0).all()
    np.testing.assert_array_equal(out["nee"][ok], out["gpp"][ok] - out["reco"][ok])
