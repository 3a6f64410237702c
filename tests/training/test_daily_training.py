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
from tamrl_coupler.model.outputs import Outputs
from tamrl_coupler.physics.carbon import SignConvention
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
    kw = {"members": 1, "steps": 30, "batch_size": 4, "crop": 120, "burn_in": 30, "lr": 1e-2, **kw}
    cfg = TrainConfig(model=mc, loss_weights=LossWeights(1.0, 1.0, 1.0), progress=False, **kw)
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


def test_loss_weightings_by_hand():
    """Two crops (batch rows) of 3 days: row 0 has 3 valid days, row 1 one; errors worked out by hand."""
    from tamrl_coupler.training.daily import _loss

    out = torch.zeros((2, 3, 2))
    out[..., 0] = 2.0  # GPP 2, Reco 0: NEE 2
    y = torch.zeros((2, 3, 3))
    y[1, 0] = torch.tensor([1.0, 0.0, 0.0])  # row 1: errors GPP 1, Reco 0, NEE 2
    w = torch.tensor([[1.0, 1.0, 1.0], [1.0, 0.0, 0.0]])
    conv = SignConvention.UPTAKE_POSITIVE
    outputs = Outputs.of(_cfg().model)
    # row 0 per day: 4 + 0 + 4 = 8; row 1: 1 + 0 + 4 = 5
    assert float(_loss(out, y, w, _cfg(), conv, outputs)) == pytest.approx((3 * 8 + 5) / 4)
    assert float(_loss(out, y, w, _cfg(site_weighting="crops"), conv, outputs)) == pytest.approx((8 + 5) / 2)
    var = torch.tensor([[4.0, 1.0, 2.0], [1.0, 1.0, 1.0]])
    assert float(_loss(out, y, w, _cfg(site_weighting="site_variance"), conv, outputs, var)) == pytest.approx(
        (4 / 4 + 0 + 4 / 2 + 5) / 2)
    # crop-mean errors equal the day errors here: the offset term adds offset_weight x the crop-alike loss
    assert float(_loss(out, y, w, _cfg(site_weighting="crops", offset_weight=0.5), conv, outputs)) == pytest.approx(
        1.5 * (8 + 5) / 2)


def test_partition_mean_targets_and_site_variance(two_towers):
    from tamrl_coupler.training.daily import partition_mean_targets, site_target_variance

    drivers = default_drivers(("co2", "igbp", "lwdown"), period="daily")
    _, y, mask = training_arrays(two_towers, drivers)
    ym = partition_mean_targets(two_towers, y)
    dt = two_towers.partitions["gpp_dt"]
    both = np.isfinite(dt) & mask
    assert both[0].any() and not np.isfinite(dt[1]).any()  # AU-Ade (FULLSET) has DT, DE-Tha (ERAMET) none
    np.testing.assert_allclose(ym[..., 0][both], 0.5 * (y[..., 0][both] + dt[both].astype(np.float32)), rtol=1e-6)
    np.testing.assert_array_equal(ym[1], y[1])  # NT where there is no DT; NEE never changes
    np.testing.assert_array_equal(ym[..., 2], y[..., 2])
    var = site_target_variance(np.nan_to_num(y), mask.astype(np.float32))
    np.testing.assert_allclose(var[1, 0], max(np.var(y[1, mask[1], 0].astype(np.float64)), 0.25), rtol=1e-4)
    ens, _ = train_daily_ensemble(_cfg(targets="nt_dt_mean", site_weighting="site_variance", offset_weight=0.5,
                                       steps=3), two_towers)
    assert ens.meta.extra["targets"] == "nt_dt_mean"


def test_training_towers_embeddings_and_novelty(two_towers):
    """The novelty measure of a trained ensemble: its centres are each training tower's mean embedding over its
    record; asking for the embeddings changes no flux."""
    from tamrl_coupler.model.records import predict_records
    from tamrl_coupler.training.novelty import daily_embeddings, embedding_centres, training_novelty

    torch.set_num_threads(1)
    ens, _ = train_daily_ensemble(_cfg(steps=3, members=2), two_towers)
    f, z = daily_embeddings(ens, two_towers)
    assert z.shape == (2, len(two_towers.time), 2, 4)
    plain = predict_records(ens, two_towers.driver_array(ens.meta.driver_names), two_towers.time[0], two_towers.lat)
    for k in ("gpp", "reco", "nee", "gpp_std"):
        np.testing.assert_array_equal(f[k], plain[k])
    ok = np.isfinite(f["gpp"])
    assert (np.isfinite(z).all(axis=(2, 3)) == ok).all()
    nov = training_novelty(ens, two_towers)
    np.testing.assert_allclose(nov.centres[1, 0], z[0, ok[0], 1].astype(np.float64).mean(axis=0), rtol=1e-5)
    np.testing.assert_array_equal(nov.centres, embedding_centres(z))
    assert np.isfinite(nov(z)[ok]).all() and np.isnan(nov(z)[~ok]).all()


def test_early_stopping_on_held_out_towers_median_score(two_towers):
    """val_every: each member trains on the towers it does not hold out and keeps the checked step whose held-out
    towers' median score is lowest."""
    torch.set_num_threads(1)
    ens, hist = train_daily_ensemble(_cfg(steps=6, val_every=3, val_fraction=0.5), two_towers)
    h = hist[0]
    assert len(h.val_loss) == 2 and h.best_epoch in (3, 6) and h.best_val_loss == min(h.val_loss)
    assert np.isfinite(h.val_loss).all()
