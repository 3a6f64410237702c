"""The daily TAM-RL: monthly-slot history (stepping = training), the network's training path equals stateful
stepping, cold start, exact restart and the checkpoint round trip."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tamrl_coupler.errors import InputError
from tamrl_coupler.kernels.features import DERIVED_INPUTS
from tamrl_coupler.model.checkpoint import load_checkpoint, save_checkpoint
from tamrl_coupler.model.daily_ensemble import DailyEnsemble, slot_features
from tamrl_coupler.model.ensemble import Ensemble
from tamrl_coupler.model.features import Driver, FeatureEncoder, derived_features
from tamrl_coupler.model.history import accumulate, close_months, month_of_day, slot_tables
from tamrl_coupler.model.meta import EnsembleMeta
from tamrl_coupler.model.networks import build_network
from tamrl_coupler.model.state import EnsembleState
from tamrl_coupler.physics.carbon import SignConvention
from tamrl_coupler.settings.model import ModelConfig

DRIVERS = [Driver("tmean", "degC", True), Driver("swdown", "MJ m-2 d-1", True), Driver("vpd", "hPa", True),
           Driver("precip", "mm d-1", True), Driver("igbp", "1", False)]
T0 = np.datetime64("2003-01-17")
LAT = np.array([50.0, -30.0, 10.0])


def _drivers(n_sites: int = 3, n_days: int = 160, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = (rng.normal(size=(n_sites, n_days, 5)) * 3 + 5).astype(np.float32)
    x[rng.random(x.shape) < 0.1] = np.nan
    x[..., 4] = np.array([0.0, 3.0, np.nan])[:n_sites, None]
    x[0, 40:70, 1] = np.nan  # a month without shortwave: that slot stays NaN
    return x


@pytest.fixture(scope="module")
def ens() -> DailyEnsemble:
    torch.manual_seed(0)
    enc = FeatureEncoder.fit(DRIVERS, _drivers())
    cfg = ModelConfig(kind="tamrl_daily", hidden=16, encoder_hidden=16, embedding=8, window=12,
                      derived_inputs=["month", "lat", "toa"], optional_drivers=["igbp"])
    nf = enc.n_features + sum(DERIVED_INPUTS[d] for d in cfg.derived_inputs)
    members = [build_network(cfg, nf, (4.0, 2.5)) for _ in range(2)]
    for m in members:  # FiLM starts at zero: randomise everything so that z matters
        for p in m.parameters():
            torch.nn.init.normal_(p, std=0.2)
    meta = EnsembleMeta(drivers=DRIVERS, period="daily", window=12, sign_convention=SignConvention.UPTAKE_POSITIVE,
                        model=cfg, n_members=2)
    return DailyEnsemble(members, enc, meta)


def test_month_of_day_is_the_civil_calendar():
    days = np.arange(-800_000, 800_000, 37)
    want = days.astype("datetime64[D]").astype("datetime64[M]").astype(np.int64)
    np.testing.assert_array_equal(month_of_day(torch.as_tensor(days)).numpy(), want)


@pytest.mark.parametrize("history_from", [0, 100])
def test_stepped_slots_equal_the_training_tables(history_from):
    x = _drivers(n_days=420)[0]
    first = int(T0.astype(np.int64))
    want = slot_tables(x, first, history_from, len(x), history_from)
    slots = torch.full((1, 12, x.shape[1]), float("nan"))
    acc_s, acc_n = torch.zeros(1, x.shape[1]), torch.zeros(1, x.shape[1])
    got = []
    for t in range(history_from, len(x)):
        got.append(slots[0].clone())
        acc_s, acc_n = accumulate(acc_s, acc_n, torch.as_tensor(x[t:t + 1]))
        slots, acc_s, acc_n, _ = close_months(slots, acc_s, acc_n, torch.tensor([first + t]))
    got = torch.stack(got).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-6, equal_nan=True)
    assert np.isnan(want[0]).all()  # the first day of a run has no history
    assert 0 < np.isnan(want[-1]).mean() < 1  # months with < 15 values stay missing, the others are filled


def test_training_path_equals_stateful_stepping(ens):
    x = _drivers()
    f = ens.predict_sequence(torch.from_numpy(x), first_period=T0, lat=LAT)
    first = int(T0.astype(np.int64))
    pidx = torch.arange(first, first + x.shape[1])
    outs = []
    for m in ens.members:
        rows = []
        for s in range(x.shape[0]):
            w = slot_features(ens.encoder, torch.from_numpy(slot_tables(x[s], first, 0, x.shape[1], 0)),
                              torch.tensor(LAT[s]))
            lat = torch.tensor(LAT[s])
            feats = torch.cat([ens.encoder(torch.from_numpy(x[s])),
                               derived_features(ens.derived_inputs, pidx, lat, "daily")], dim=-1)
            o, _, _ = m.forward_sequence(feats[None], w[None], torch.zeros(1, 16), torch.zeros(1, 16))
            rows.append(o[0])
        outs.append(torch.stack(rows))
    gpp = torch.stack(outs).mean(0)[..., 0].double()
    torch.testing.assert_close(gpp, f.gpp, rtol=0, atol=1e-5)
    np.testing.assert_array_equal((f.gpp - f.reco).numpy(), f.nee.numpy())  # NEE = GPP - Reco exactly


def test_history_changes_the_fluxes_and_cold_start_is_defined(ens):
    x = torch.from_numpy(_drivers())
    warm, state = ens.predict_sequence(x[:, :100], first_period=T0, lat=LAT, return_state=True)
    assert torch.isfinite(state.window).any() and bool(torch.isfinite(warm.gpp).all())
    day = T0 + np.timedelta64(100, "D")
    cold = ens.predict_sequence(x[:, 100:], first_period=day, lat=LAT)  # no history: every slot NaN
    cont = ens.predict_sequence(x[:, 100:], state=state)
    assert bool(torch.isfinite(cold.gpp).all())
    assert (cold.gpp - cont.gpp).abs().max() > 1e-3  # z is not ignored
    with pytest.raises(InputError, match="first_period"):
        ens.init_state(3, lat=LAT)


def test_restart_and_checkpoint_round_trip_bit_for_bit(ens, tmp_path):
    x = torch.from_numpy(_drivers())
    _, state = ens.predict_sequence(x[:, :100], first_period=T0, lat=LAT, return_state=True)
    again = EnsembleState.from_numpy(state.to_numpy())
    a = ens.predict_sequence(x[:, 100:], state=state)
    b = ens.predict_sequence(x[:, 100:], state=again)
    assert torch.equal(a.gpp, b.gpp) and torch.equal(a.nee_std, b.nee_std)
    path = save_checkpoint(ens, tmp_path / "daily.npz")
    loaded = load_checkpoint(path, expect_period="daily")
    assert isinstance(loaded, DailyEnsemble)
    c = loaded.predict_sequence(x, first_period=T0, lat=LAT)
    d = ens.predict_sequence(x, first_period=T0, lat=LAT)
    assert torch.equal(c.gpp, d.gpp) and torch.equal(c.reco, d.reco)


def test_calibrated_spreads_are_applied_stored_and_described(ens, tmp_path):
    from tamrl_coupler.model.calibration import SpreadCalibration

    rng = np.random.default_rng(3)
    pred = {"gpp": rng.gamma(2, 2, 3000), "reco": rng.gamma(2, 1.5, 3000)}
    pred["nee"] = pred["gpp"] - pred["reco"]
    obs = {k: v + rng.normal(size=3000) * (0.5 + 0.2 * pred["gpp"]) for k, v in pred.items()}
    cal = SpreadCalibration.fit(pred, obs, np.full(3000, 0.0), fitted_on="test")
    meta = EnsembleMeta(**{**ens.meta.__dict__, "calibration": cal.to_dict()})
    calibrated = DailyEnsemble(ens.members, ens.encoder, meta)
    x = torch.from_numpy(_drivers())
    f = calibrated.predict_sequence(x[:, :40], first_period=T0, lat=LAT)
    plain = ens.predict_sequence(x[:, :40], first_period=T0, lat=LAT)
    assert torch.equal(f.gpp, plain.gpp)  # the means are untouched
    igbp = x[:, :40, 4].numpy()
    want = cal.sigma(f.gpp.numpy(), f.reco.numpy(), igbp)
    for v in ("gpp", "reco", "nee"):
        np.testing.assert_allclose(getattr(f, f"{v}_std").numpy(), want[v], rtol=1e-6)
    assert not torch.allclose(f.gpp_std, plain.gpp_std)
    loaded = load_checkpoint(save_checkpoint(calibrated, tmp_path / "cal.npz"))
    g = loaded.predict_sequence(x[:, :40], first_period=T0, lat=LAT)
    assert torch.equal(g.nee_std, f.nee_std)
    assert "calibrated predictive standard deviation" in loaded.spread_meaning
    assert "members" in ens.spread_meaning


def test_cold_months_equal_fresh_runs_of_each_month(ens):
    from tamrl_coupler.data.dataset import FluxDataset
    from tamrl_coupler.model.inference import predict_cold_starts

    x = _drivers()
    names = ens.meta.driver_names
    time = (T0 + np.arange(x.shape[1])).astype("datetime64[ns]")
    data = FluxDataset(sites=np.array(["A", "B", "C"]), time=time, period="daily", igbp=np.array(["", "", ""]),
                       lat=LAT, lon=np.zeros(3), drivers={n: x[..., j].astype(np.float64) for j, n in
                                                          enumerate(names) if n != "igbp"}, targets={})
    data.drivers["igbp"] = x[..., names.index("igbp")].astype(np.float64)
    cold = predict_cold_starts(ens, data)
    feb = slice(15, 15 + 28)  # 2003-02-01 .. 2003-02-28: a month from a fresh state
    alone = ens.predict_sequence(torch.from_numpy(x[:, feb]), first_period=np.datetime64("2003-02-01"), lat=LAT)
    np.testing.assert_allclose(cold["gpp"][:, feb], alone.gpp.numpy(), rtol=0, atol=1e-5)  # other batch: float32
    warm = ens.predict_sequence(torch.from_numpy(x), first_period=T0, lat=LAT)
    assert not np.allclose(cold["gpp"][:, 60:], warm.gpp.numpy()[:, 60:])  # history matters after the first month


def test_record_months_equal_the_training_tables():
    from tamrl_coupler.model.history import RecordMonths

    x = _drivers(n_days=500)
    first = int(T0.astype(np.int64))
    months = RecordMonths(x, first)
    for s, start, stop, hf in ((0, 0, 500, 0), (1, 200, 480, 37), (2, 300, 330, 300), (0, 31, 400, 31)):
        want = slot_tables(x[s], first, start, stop, hf)
        day_month = (np.arange(first + start, first + stop).astype("datetime64[D]").astype("datetime64[M]")
                     .astype(np.int64))
        m = np.unique(day_month)
        got = months.tables(np.array([s]), m[None], np.array([hf]))[0]
        np.testing.assert_allclose(got[np.searchsorted(m, day_month)], want, rtol=1e-6, equal_nan=True)


def _lstm_daily() -> Ensemble:
    torch.manual_seed(1)
    cfg = ModelConfig(kind="lstm", hidden=16, window=12, derived_inputs=["month", "lat", "toa"],
                      optional_drivers=["igbp"])
    enc = FeatureEncoder.fit(DRIVERS, _drivers())
    nf = enc.n_features + sum(DERIVED_INPUTS[d] for d in cfg.derived_inputs)
    meta = EnsembleMeta(drivers=DRIVERS, period="daily", window=12, sign_convention=SignConvention.UPTAKE_POSITIVE,
                        model=cfg, n_members=2)
    return Ensemble([build_network(cfg, nf, (4.0, 2.5)) for _ in range(2)], enc, meta)


@pytest.mark.parametrize("kind", ["tamrl_daily", "lstm"])
def test_whole_record_evaluation_equals_stepping_each_record_alone(ens, kind):
    from tamrl_coupler.model.records import predict_records, record_spans

    model = ens if kind == "tamrl_daily" else _lstm_daily()
    x = _drivers(n_days=300)
    x[1, :45] = np.nan  # records start and end on different days of the axis
    x[2, 250:, :4] = np.nan
    got = predict_records(model, x, T0, LAT, sites_per_batch=2)
    start, stop = record_spans(x, [0, 1, 2, 3])
    assert start[1] >= 45 and stop[2] <= 250
    for s in range(3):
        alone = model.predict_sequence(torch.from_numpy(x[s:s + 1, start[s]:stop[s]]),
                                       first_period=T0 + np.timedelta64(int(start[s]), "D"), lat=LAT[s:s + 1])
        for k in ("gpp", "reco", "nee", "nee_std"):
            np.testing.assert_allclose(got[k][s, start[s]:stop[s]], getattr(alone, k)[0].numpy(), rtol=0, atol=2e-5)
        assert np.isnan(got["gpp"][s, :start[s]]).all() and np.isnan(got["gpp"][s, stop[s]:]).all()
    ok = np.isfinite(got["gpp"])
    np.testing.assert_array_equal(got["nee"][ok], got["gpp"][ok] - got["reco"][ok])  # NEE = GPP - Reco exactly


def test_whole_record_evaluation_and_checkpoint_names_refuse_what_does_not_fit():
    """Drivers of another layout or latitudes of another length are an InputError naming the expected layout; a
    misspelt checkpoint name lists the names there are."""
    from tamrl_coupler.errors import CheckpointError, InputError
    from tamrl_coupler.model import load_checkpoint
    from tamrl_coupler.model.records import predict_records

    ens = load_checkpoint("daily")
    d = len(ens.meta.drivers)
    with pytest.raises(InputError, match=rf"drivers \(2, 40, {d - 1}\).*expected \(sites, days, {d}: \['tmean'"):
        predict_records(ens, np.zeros((2, 40, d - 1)), np.datetime64("2015-01-01"), np.zeros(2))
    with pytest.raises(InputError, match=r"latitudes \(3,\)"):
        predict_records(ens, np.zeros((2, 40, d)), np.datetime64("2015-01-01"), np.zeros(3))
    with pytest.raises(CheckpointError, match=r"dialy does not exist \(expected one of \['daily', 'monthly'\]"):
        load_checkpoint("dialy")
