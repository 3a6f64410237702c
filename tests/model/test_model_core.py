"""TAM-RL ensemble: the balance identity, stateful == whole-sequence inference, purity, input errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tamrl_coupler.errors import InputError
from tamrl_coupler.model import Ensemble, EnsembleMeta, EnsembleState, FeatureEncoder, ModelConfig, default_drivers
from tamrl_coupler.model.checkpoint import n_model_features
from tamrl_coupler.model.networks import NETWORKS, FluxNetwork, build_network
from tamrl_coupler.physics.carbon import SignConvention

torch.set_num_threads(1)


def random_drivers(n_cells: int, t: int, seed: int = 0) -> np.ndarray:
    """Plausible monthly drivers (tmin, tmax, swdown, vpd, precip, lai, co2, igbp) with NaN gaps in optional ones."""
    rng = np.random.default_rng(seed)
    month = np.arange(t)[None, :] % 12
    season = np.sin(2 * np.pi * (month - 3) / 12)
    tmin = rng.normal(5, 8, (n_cells, 1)) + 10 * season + rng.normal(0, 1, (n_cells, t))
    x = np.stack([
        tmin, tmin + rng.uniform(5, 12, (n_cells, t)),
        np.clip(15 + 10 * season + rng.normal(0, 2, (n_cells, t)), 0, None),
        rng.gamma(2, 4, (n_cells, t)), rng.gamma(1, 2, (n_cells, t)), rng.uniform(0.2, 5, (n_cells, t)),
        np.full((n_cells, t), 390.0), np.repeat(rng.integers(0, 12, (n_cells, 1)).astype(float), t, axis=1),
    ], axis=-1).astype(np.float32)
    x[rng.random((n_cells, t)) < 0.3, 5] = np.nan  # LAI often missing
    x[: n_cells // 3, :, 7] = np.nan  # unknown land cover
    return x


FIRST = np.datetime64("2015-03")


def lats(n: int) -> np.ndarray:
    return np.linspace(-60.0, 75.0, n)


def make_ensemble(kind: str = "tamrl", members: int = 3, nee_mode: str = "derived",
                  convention: str = "uptake_positive", seed: int = 0, derived=("month", "lat")) -> Ensemble:
    cfg = ModelConfig(kind=kind, hidden=16, encoder_hidden=8, embedding=4, projection=8, window=6, nee_mode=nee_mode,
                      derived_inputs=list(derived))
    drivers = default_drivers()
    enc = FeatureEncoder.fit(drivers, random_drivers(20, 24, seed=99))
    torch.manual_seed(seed)
    nets = []
    for _ in range(members):
        net = build_network(cfg, n_model_features(enc, cfg), (3.0, 2.0, 1.5)[: cfg.n_outputs])
        for p in net.parameters():  # non-trivial modulation (FiLM layers start at zero otherwise)
            torch.nn.init.normal_(p, std=0.3)
        nets.append(net)
    meta = EnsembleMeta(drivers=drivers, period="monthly", window=cfg.window,
                        sign_convention=SignConvention.parse(convention), model=cfg, n_members=members)
    return Ensemble(nets, enc, meta)


FIELDS = ("gpp", "reco", "nee", "gpp_std", "reco_std", "nee_std")


@pytest.mark.parametrize("kind", ["tamrl", "lstm"])
def test_stateful_steps_equal_whole_sequence_bit_for_bit(kind):
    ens = make_ensemble(kind)
    x = torch.from_numpy(random_drivers(7, 30))
    whole = ens.predict_sequence(x, first_period=FIRST, lat=lats(7))
    state = ens.init_state(7, first_period=FIRST, lat=lats(7))
    for t in range(30):
        if t == 13:  # a restart in the middle: through numpy and back
            state = EnsembleState.from_numpy(state.to_numpy())
        if t == 17:  # a restart with the period's embedding already cached
            ens.ensure_embedding(state)
            assert bool(state.z_ready.all())
            state = EnsembleState.from_numpy(state.to_numpy())
        f, state = ens.step(x[:, t], state)
        for k in FIELDS:
            assert torch.equal(getattr(f, k), getattr(whole, k)[:, t]), (k, t)
    first, mid = ens.predict_sequence(x[:, :11], return_state=True, first_period=FIRST, lat=lats(7))
    second = ens.predict_sequence(x[:, 11:], state=mid)
    assert torch.equal(torch.cat([first.nee, second.nee], dim=1), whole.nee)


@pytest.mark.parametrize("convention", ["uptake_positive", "atmosphere_positive"])
def test_balance_identity_exact_and_components_non_negative(convention):
    ens = make_ensemble(convention=convention)
    f = ens.predict_sequence(torch.from_numpy(random_drivers(50, 20, seed=3)), first_period=FIRST, lat=lats(50))
    expected = f.gpp - f.reco if convention == "uptake_positive" else f.reco - f.gpp
    assert torch.equal(f.nee, expected)
    assert f.gpp.dtype == torch.float64
    assert bool((f.gpp >= 0).all()) and bool((f.reco >= 0).all())
    assert bool((f.gpp_std > 0).all()), "independently initialised members must spread"
    assert bool(torch.isfinite(f.nee).all())


def test_step_is_pure_and_cells_independent():
    ens = make_ensemble()
    x = torch.from_numpy(random_drivers(6, 15))
    _, state = ens.predict_sequence(x[:, :14], return_state=True, first_period=FIRST, lat=lats(6))
    before = {k: v.copy() for k, v in state.to_numpy().items()}
    f1, s1 = ens.step(x[:, 14], state)
    f2, _ = ens.step(x[:, 14], state)  # evaluating a partial period twice gives the same answer
    assert torch.equal(f1.nee, f2.nee)
    for k, v in state.to_numpy().items():
        if k not in ("z", "z_ready"):  # the embedding cache is filled by the first call, nothing else changes
            np.testing.assert_array_equal(v, before[k])
    assert not np.array_equal(s1.to_numpy()["h"], before["h"])
    # a cell's result does not depend on the other cells in the batch (up to float reassociation)
    parts = [state.take(np.array([0, 1, 2])), state.take(np.array([3, 4, 5]))]
    assert np.array_equal(EnsembleState.concat(parts).to_numpy()["window"], state.to_numpy()["window"], equal_nan=True)
    sub = state.take(np.array([4, 1]))
    fs, _ = ens.step(x[[4, 1], 14], sub)
    np.testing.assert_allclose(fs.nee.numpy(), f1.nee.numpy()[[4, 1]], rtol=1e-5, atol=1e-6)


def test_missing_drivers_are_masked_not_zero_filled():
    drivers = default_drivers()
    enc = FeatureEncoder.fit(drivers, random_drivers(10, 12))
    x = torch.from_numpy(random_drivers(2, 1)[:, 0])
    x[0, 5] = float("nan")  # LAI missing at cell 0
    x[1, 5] = float(enc.mean[5])  # LAI exactly at its mean at cell 1 -> standardised value 0
    f = enc(x)
    n_cont = len(enc.cont_idx)
    lai_pos = enc.cont_idx.index(5)
    assert f[0, lai_pos] == 0 and f[1, lai_pos] == 0  # same value feature ...
    assert f[0, n_cont + lai_pos] == 1 and f[1, n_cont + lai_pos] == 0  # ... told apart by the missing indicator
    assert f.shape[-1] == enc.n_features


def test_minimal_drivers_run_and_bad_input_is_named():
    ens = make_ensemble()
    x = torch.from_numpy(random_drivers(4, 5))
    x[..., 5:] = float("nan")  # only the five required meteorological drivers
    f = ens.predict_sequence(x, first_period=FIRST, lat=lats(4))
    assert bool(torch.isfinite(f.nee).all())
    state = ens.init_state(4, first_period=FIRST, lat=lats(4))
    with pytest.raises(InputError, match=r"expected shape \(n_cells, 8\)"):
        ens.step(x[:, 0, :5], state)
    bad = x[:, 0].clone()
    bad[2, 1] = float("inf")
    with pytest.raises(InputError, match="'tmax' is infinite at cell 2"):
        ens.step(bad, state)
    with pytest.raises(InputError, match="3 cells, but the state holds 4"):
        ens.step(x[:3, 0], state)


def test_embedding_is_computed_once_per_period_from_completed_history_only(monkeypatch):
    ens = make_ensemble()
    x = torch.from_numpy(random_drivers(5, 10))
    _, state = ens.predict_sequence(x[:, :8], return_state=True, first_period=FIRST, lat=lats(5))
    calls = []
    orig = ens.kernel.bind_encode  # all members' encoders in one program
    monkeypatch.setattr(ens.kernel, "bind_encode", lambda *a: calls.append(1) or orig(*a))
    partial = [ens.step(x[:, 8] * s, state) for s in (0.3, 0.6, 1.0)]  # partial-period drivers, then the whole
    assert len(calls) == 1  # the encoder ran once for the three calls
    # z depends only on the periods before: the current drivers change the fluxes, not the embedding
    assert not torch.equal(partial[0][0].gpp, partial[2][0].gpp)
    z_before = state.z.clone()
    ens.ensure_embedding(state)
    assert torch.equal(state.z, z_before)
    nxt = partial[2][1]
    assert not bool(nxt.z_ready.any()) and torch.equal(nxt.period, state.period + 1)
    ens.step(x[:, 9], nxt)
    assert len(calls) == 2 and bool(nxt.z_ready.all())


def test_calendar_and_latitude_are_derived_inputs_with_clear_errors():
    ens = make_ensemble()
    x = torch.from_numpy(random_drivers(3, 12))
    jan = ens.predict_sequence(x, first_period="2015-01", lat=lats(3))
    jul = ens.predict_sequence(x, first_period="2015-07", lat=lats(3))
    south = ens.predict_sequence(x, first_period="2015-01", lat=-lats(3))
    assert not torch.allclose(jan.gpp, jul.gpp) and not torch.allclose(jan.gpp, south.gpp)
    with pytest.raises(InputError, match="first_period"):
        ens.init_state(3, lat=lats(3))
    with pytest.raises(InputError, match="lat="):
        ens.init_state(3, first_period=FIRST)
    with pytest.raises(InputError, match="lat at cell 1"):
        ens.init_state(3, first_period=FIRST, lat=[0.0, 95.0, 0.0])
    with pytest.raises(InputError, match="no calendar period at cell 0"):
        ens.step(x[:, 0], EnsembleState(*(getattr(ens.init_state(3, FIRST, lats(3)), k) for k in ("window", "h", "c"))))
    # a checkpoint without derived inputs runs without them
    plain = make_ensemble(derived=())
    assert bool(torch.isfinite(plain.predict_sequence(x).nee).all())
    # the derived features: season in both hemispheres, polar night/day length
    from tamrl_coupler.model.features import derived_features, period_index

    pidx = torch.as_tensor(period_index(np.array(["2015-06", "2015-12"], dtype="datetime64[M]"), "monthly"))
    f = derived_features(["month", "lat"], pidx[:, None], torch.tensor([[80.0, 0.0, -80.0]]), "monthly")
    day = f[..., 3] * 24
    assert day[0, 0] == 24 and day[0, 2] == 0 and day[1, 0] == 0 and day[1, 2] == 24
    assert abs(float(day[0, 1]) - 12) < 0.01


def test_every_network_is_a_flux_network():
    """One protocol the ensemble, training and checkpoints rely on; no network borrows another's methods."""
    for kind, cls in NETWORKS.items():
        net = make_ensemble(kind, members=1).members[0]
        assert isinstance(net, cls) and isinstance(net, FluxNetwork), kind
        assert "flux_heads" not in vars(cls) and "_heads" not in vars(cls), kind
