"""Training pieces: the carbon-balance penalty is in physical units; folds are grouped and IGBP-stratified; metrics."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tamrl_coupler.model.outputs import Outputs
from tamrl_coupler.physics.carbon import SignConvention
from tamrl_coupler.settings.model import ModelConfig
from tamrl_coupler.settings.train import LossWeights, TrainConfig
from tamrl_coupler.training.cv import stratified_group_folds
from tamrl_coupler.training.loop import _loss
from tamrl_coupler.training.metrics import balance_violation, flux_metrics


def test_balance_penalty_is_in_physical_units_not_standardised():
    gpp, reco, nee_free = torch.tensor([[6.0, 2.0]]), torch.tensor([[4.0, 1.0]]), torch.tensor([[1.0, 1.5]])
    out = torch.stack([gpp, reco, nee_free], dim=-1)
    y = torch.zeros_like(out)
    m = torch.ones(1, 2, dtype=torch.bool)
    scale = torch.tensor([3.0, 2.0, 1.5])  # the standardising scales must NOT enter the penalty
    cfg = TrainConfig(balance_weight=2.0, loss_weights=LossWeights(gpp=0.0, reco=0.0, nee=0.0))
    free = Outputs.of(ModelConfig(nee_mode="free"))  # gpp, reco, nee_free heads; targets gpp, reco, nee
    loss = _loss(out, y, m, scale, cfg, SignConvention.UPTAKE_POSITIVE, free)
    violation = nee_free - (gpp - reco)  # (gC m-2 d-1): [-1.0, 0.5]
    assert float(loss) == pytest.approx(2.0 * float((violation**2).mean()))
    cfg_flux = TrainConfig(balance_weight=2.0, loss_weights=LossWeights(gpp=0.0, reco=0.0, nee=0.0))
    loss_up = _loss(out, y, m, scale, cfg_flux, SignConvention.ATMOSPHERE_POSITIVE, free)
    assert float(loss_up) == pytest.approx(2.0 * float(((nee_free - (reco - gpp)) ** 2).mean()))
    derived = _loss(out[..., :2], y, m, scale, cfg, SignConvention.UPTAKE_POSITIVE, Outputs.of(ModelConfig()))
    assert float(derived) == 0.0  # derived-NEE variants have no penalty: their balance is exact by construction


def test_folds_are_grouped_by_site_and_stratified_by_igbp():
    rng = np.random.default_rng(1)
    igbp = np.array(["ENF"] * 38 + ["GRA"] * 27 + ["DBF"] * 20 + ["WET"] * 16 + ["SNO"])
    rng.shuffle(igbp)
    fold = stratified_group_folds(igbp, 5, seed=0)
    sizes = np.bincount(fold, minlength=5)
    assert sizes.max() - sizes.min() <= 1  # each site in exactly one fold, folds balanced
    for cls in ("ENF", "GRA", "DBF", "WET"):
        per = np.bincount(fold[igbp == cls], minlength=5)
        assert per.max() - per.min() <= 1, (cls, per)
    assert np.array_equal(fold, stratified_group_folds(igbp, 5, seed=0))  # reproducible


def test_forcing_cell_folds_keep_colocated_sites_together():
    """Sites sharing a forcing cell (identical drivers) must never be split between training and test folds."""
    rng = np.random.default_rng(2)
    igbp = np.array(["ENF"] * 30 + ["CRO"] * 12 + ["GRA"] * 18)
    groups = np.concatenate([np.arange(40), rng.integers(0, 40, size=20)])  # 20 sites share a cell with another
    fold = stratified_group_folds(igbp, 5, seed=0, groups=groups)
    for g in set(groups.tolist()):
        assert len(set(fold[groups == g].tolist())) == 1, g
    sizes = np.bincount(fold, minlength=5)
    assert sizes.min() > 0 and sizes.max() - sizes.min() <= 4
    assert np.array_equal(fold, stratified_group_folds(igbp, 5, seed=0, groups=groups))
    # singleton groups reproduce the by-site folds exactly
    assert np.array_equal(stratified_group_folds(igbp, 5, 0, np.arange(60)), stratified_group_folds(igbp, 5, 0))


def test_forcing_cell_groups_from_identical_drivers():
    from tamrl_coupler.data.dataset import FluxDataset
    from tamrl_coupler.training.cv import forcing_cell_groups

    t = np.arange("2001-01", "2002-01", dtype="datetime64[M]").astype("datetime64[ns]")
    base = np.random.default_rng(3).random((3, 12))
    drivers = {k: base[[0, 1, 0]] + i for i, k in enumerate(("tmin", "tmax", "swdown", "vpd", "precip"))}
    drivers["lai"] = np.random.default_rng(4).random((3, 12))  # optional drivers do not split a cell
    ds = FluxDataset(sites=np.array(["A", "B", "C"]), time=t, period="monthly", drivers=drivers, targets={},
                     igbp=np.array(["ENF", "ENF", "GRA"]))
    g = forcing_cell_groups(ds)
    assert g[0] == g[2] and g[0] != g[1]


def test_metrics_numbers():
    obs = np.array([[1.0, 2.0, np.nan, 4.0], [0.0, 0.0, 1.0, np.nan]])
    pred = np.array([[2.0, 2.0, 5.0, 4.0], [0.0, 1.0, 1.0, 3.0]])
    m = flux_metrics(pred, obs, min_site_obs=3)
    assert m["n"] == 6 and m["rmse"] == pytest.approx(np.sqrt(2 / 6)) and m["bias"] == pytest.approx(2 / 6)
    o = obs[np.isfinite(obs)]
    assert m["r2"] == pytest.approx(1 - 2 / ((o - o.mean()) ** 2).sum())
    assert m["median_site_rmse"] == pytest.approx(np.median([np.sqrt(1 / 3), np.sqrt(1 / 3)]))
    bv = balance_violation(np.array([3.0]), np.array([1.0]), np.array([2.5]))
    assert bv["rms"] == pytest.approx(0.5) and bv["max_abs"] == pytest.approx(0.5)


def test_training_sees_the_same_inputs_as_stepwise_inference():
    """The training path (whole sequences, windows of the W periods *before* each period, derived season and
    latitude) computes what the product computes one period at a time."""
    from pathlib import Path

    from tamrl_coupler.data.reader import read_dataset
    from tamrl_coupler.model import ModelConfig
    from tamrl_coupler.model.features import period_index
    from tamrl_coupler.training.loop import _Batcher, train_ensemble, training_arrays

    torch.set_num_threads(1)
    data = read_dataset(Path(__file__).resolve().parents[2] / "tamrl_coupler/sample_data/fluxval_sample.nc")
    cfg = TrainConfig(members=1, max_epochs=1, patience=1, progress=False, batch_size=4, crop=24,
                      model=ModelConfig(hidden=8, encoder_hidden=4, embedding=3, projection=4, window=6,
                                        derived_inputs=["month", "lat"]))
    ens, _ = train_ensemble(cfg, data)
    x, y, mask = training_arrays(data, ens.meta.drivers)
    batcher = _Batcher(x, y, mask, ens.features, 6, [], period_index(data.time, data.period), data.lat)
    sites = np.arange(3)
    f, w, _, _ = batcher.full(sites)
    net = ens.members[0]
    with torch.no_grad():
        h0 = torch.zeros(len(sites), net.hidden)
        out, _, _ = net.forward_sequence(f, w, h0, h0)
    pred = ens.predict_sequence(torch.from_numpy(x[sites]), first_period=data.time[0], lat=data.lat[sites])
    np.testing.assert_allclose(out[..., 0].numpy(), pred.gpp.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out[..., 1].numpy(), pred.reco.numpy(), rtol=1e-5, atol=1e-6)
    # starting the record in another month changes the derived season, hence the fluxes
    other = ens.predict_sequence(torch.from_numpy(x[sites]), first_period=data.time[6], lat=data.lat[sites])
    assert not np.allclose(other.gpp.numpy(), pred.gpp.numpy())


def test_cv_variant_overrides_and_early_stopping_options_are_checked():
    from tamrl_coupler.settings import ConfigError, from_dict
    from tamrl_coupler.settings.cv import CVConfig

    cfg = from_dict(CVConfig, {"train": {}, "variants": [
        {"name": "a", "kind": "tamrl", "train": {"min_epochs": 10, "val_smoothing": 0.5, "loss_units": "physical"}}]})
    assert cfg.variants[0].train == {"min_epochs": 10, "val_smoothing": 0.5, "loss_units": "physical"}
    with pytest.raises(ConfigError, match=r"variants\[0\].train: unknown or nested key\(s\) \['lr_typo'\]"):
        from_dict(CVConfig, {"train": {}, "variants": [{"name": "a", "kind": "tamrl", "train": {"lr_typo": 1}}]})
    with pytest.raises(ConfigError, match="val_smoothing"):
        from_dict(TrainConfig, {"val_smoothing": 1.0})


def test_training_options_run_and_keep_the_identity():
    """by-record site sampling, no held-out sites (fixed cosine schedule, last weights), input noise, and crops as
    long as the whole record (a late-starting site used to index past the padded record)."""
    from pathlib import Path

    from tamrl_coupler.data.reader import read_dataset
    from tamrl_coupler.model import ModelConfig
    from tamrl_coupler.settings import ConfigError, from_dict
    from tamrl_coupler.training.loop import train_ensemble

    torch.set_num_threads(1)
    data = read_dataset(Path(__file__).resolve().parents[2] / "tamrl_coupler/sample_data/fluxval_sample.nc")
    small = ModelConfig(hidden=8, encoder_hidden=4, embedding=3, projection=4, window=6)
    cfg = TrainConfig(members=1, max_epochs=3, progress=False, batch_size=4, crop=len(data.time), burn_in=6,
                      model=small, site_sampling="by_record", val_fraction=0.0, input_noise=0.2)
    ens, hist = train_ensemble(cfg, data)
    assert hist[0].epochs_run == 3 and hist[0].best_epoch == 2 and hist[0].val_loss == []
    x = torch.from_numpy(data.driver_array(ens.meta.driver_names))
    f = ens.predict_sequence(x, first_period=data.time[0], lat=data.lat)
    assert torch.isfinite(f.gpp).all()
    assert torch.equal(f.nee, f.gpp - f.reco)
    with pytest.raises(ConfigError, match="input_noise"):
        from_dict(TrainConfig, {"input_noise": -0.1})
    with pytest.raises(ConfigError, match="site_sampling"):
        from_dict(TrainConfig, {"site_sampling": "random"})


@pytest.mark.parametrize("group_by", ["site", "forcing_cell"])
def test_cv_command_end_to_end_on_the_sample(tmp_path, group_by):
    """`tamrl-coupler cv` on the shipped 9-site sample (tiny models): tables, JSON and held-out predictions agree;
    every site is predicted by the fold that held it out; the derived-NEE rows keep the balance exactly."""
    import json
    from pathlib import Path

    import yaml

    from tamrl_coupler.cli import main

    sample = Path(__file__).resolve().parents[2] / "tamrl_coupler/sample_data/fluxval_sample.nc"
    cfg = {"data": str(sample), "folds": 3, "seed": 0, "group_by": group_by, "output": str(tmp_path / "cv"),
           "train": {"members": 1, "max_epochs": 2, "patience": 1, "batch_size": 4, "crop": 24, "progress": False,
                     "model": {"kind": "tamrl", "hidden": 8, "encoder_hidden": 4, "embedding": 3, "projection": 4,
                               "window": 6}},
           "variants": [{"name": "tamrl", "kind": "tamrl"}, {"name": "xgboost", "kind": "xgboost"}],
           "xgboost": {"n_estimators": 5}}
    path = tmp_path / "cv.yaml"
    path.write_text(yaml.safe_dump(cfg))
    assert main(["cv", str(path), "--no-progress", "--workers", "1"]) == 0
    res = json.loads((tmp_path / "cv.json").read_text())
    md = (tmp_path / "cv.md").read_text()
    pred = np.load(tmp_path / "cv_predictions.npz")
    assert sorted(res["folds"]) == sorted(pred["site"].tolist()) and len(res["folds"]) == 9
    assert set(res["folds"].values()) == {0, 1, 2}
    from tamrl_coupler.data.reader import read_dataset

    data = read_dataset(sample)
    order = [list(data.sites).index(s) for s in pred["site"]]
    obs = data.targets["gpp"][order]
    for row in ("tamrl", "xgboost"):
        p = pred[f"{row}/gpp"]
        ok = np.isfinite(obs) & np.isfinite(p)
        assert ok.sum() == np.isfinite(obs).sum()  # every observed month predicted, by its held-out fold
        rmse = float(np.sqrt(np.mean((p[ok] - obs[ok]) ** 2)))
        assert rmse == pytest.approx(res["rows"][row]["all"]["gpp"]["rmse"], rel=1e-6)
        assert f"| {row} | {rmse:.3f} |" in md
    assert np.array_equal(pred["tamrl/nee"], pred["tamrl/gpp"] - pred["tamrl/reco"])
    assert res["rows"]["tamrl"]["balance_violation"]["rms"] == 0.0
    assert "Per IGBP class, every metric" in md and ("forcing cell" in md) == (group_by == "forcing_cell")


def test_crops_stay_inside_the_record_and_noise_spares_categorical_drivers():
    """A crop nearly as long as the record for a site whose targets start late must still fit inside the padded
    record (it used to start past T - length and index beyond it); input noise perturbs continuous drivers only."""
    from tamrl_coupler.training.loop import _Batcher

    t, d, w = 40, 3, 4
    x = np.random.default_rng(0).random((2, t, d)).astype(np.float32)
    x[..., 2] = 5.0  # a categorical column (e.g. the land-cover class)
    y = np.zeros((2, t, 3), np.float32)
    mask = np.zeros((2, t), bool)
    mask[0, 30:] = True  # targets only in the last 10 periods
    mask[1] = True

    def raw(xp, pidx, lat):
        return xp

    clean = _Batcher(x, y, mask, raw, w, [], np.arange(t), np.zeros(2))
    rng = np.random.default_rng(1)
    for _ in range(20):
        f, win, yy, m = clean.crops(np.array([0, 1]), 30, 5, 0.0, rng)
        assert f.shape == (2, 30, d) and win.shape == (2, 30, w, d)
        assert bool(m[0].any())  # the late site's crop reaches its targets
    noisy = _Batcher(x, y, mask, raw, w, [], np.arange(t), np.zeros(2), noise=np.array([0.1, 0.2, 0.0]))
    f0, *_ = clean.crops(np.array([1]), 40, 5, 0.0, np.random.default_rng(2))
    f1, *_ = noisy.crops(np.array([1]), 40, 5, 0.0, np.random.default_rng(2))
    diff = (f1 - f0).numpy()
    assert np.all(diff[..., 2] == 0.0)
    assert 0.05 < diff[..., 0].std() < 0.15 and 0.1 < diff[..., 1].std() < 0.3


def test_by_record_sampling_weighs_every_site_period_alike():
    from tamrl_coupler.training.loop import epoch_sites

    sites, n_obs = np.array([3, 7, 9]), np.array([2.0, 20.0, 178.0])
    rng = np.random.default_rng(0)
    assert sorted(epoch_sites(sites, n_obs, "uniform", rng).tolist()) == [3, 7, 9]
    draws = np.concatenate([epoch_sites(sites, n_obs, "by_record", rng) for _ in range(20_000)])
    freq = np.array([(draws == s).mean() for s in sites])
    np.testing.assert_allclose(freq, n_obs / n_obs.sum(), atol=0.005)


def test_cold_crops_have_no_history_before_their_start_and_no_burn_in():
    """A cold crop is what a run started at the crop holds: the window before it all missing, the loss from its
    first period; warm crops keep their history and skip the burn-in."""
    from tamrl_coupler.training.loop import _Batcher

    t, d, w = 60, 2, 6
    x = np.random.default_rng(0).random((1, t, d)).astype(np.float32)
    mask = np.ones((1, t), bool)
    batcher = _Batcher(x, np.zeros((1, t, 3), np.float32), mask, lambda xp, p, la: xp, w, [], np.arange(t),
                       np.zeros(1))
    for cold_fraction, cold in ((0.9999, True), (0.0, False)):
        rng = np.random.default_rng(5)
        for _ in range(10):
            f, win, _, m = batcher.crops(np.array([0]), 20, 4, 0.0, rng, cold_fraction)
            start = int(np.flatnonzero(np.all(x[0] == f[0, 0].numpy(), axis=1))[0])
            if start == 0:
                continue  # the record's start: no history either way
            assert bool(torch.isnan(win[0, 0]).all()) is cold  # the periods before the crop
            assert bool(torch.isfinite(win[0, w]).all())  # period w: its window is the crop's first w periods
            assert bool(m[0, :4].all()) is cold
