"""Member-batched kernels: agreement with the member loop, exact features, plans, CUDA-graph bookkeeping, buffers.

Self-contained (its own small ensembles and drivers), so that it moves with the model tests.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tamrl_coupler.kernels.cuda_graphs import GraphedPlan
from tamrl_coupler.kernels.features import FeatureKernel
from tamrl_coupler.kernels.fused_cpu import available as fused_available
from tamrl_coupler.kernels.ops import run
from tamrl_coupler.kernels.workspace import Buffers
from tamrl_coupler.model import Ensemble, EnsembleMeta, EnsembleState, FeatureEncoder, ModelConfig, default_drivers
from tamrl_coupler.model import load_checkpoint as load_shipped
from tamrl_coupler.model.checkpoint import n_model_features
from tamrl_coupler.model.daily_ensemble import ensemble_class
from tamrl_coupler.model.features import derived_features
from tamrl_coupler.model.networks import NETWORKS, build_network
from tamrl_coupler.physics.carbon import SignConvention

torch.set_num_threads(1)
FIELDS = ("gpp", "reco", "nee", "gpp_std", "reco_std", "nee_std")
# the evaluators under test: the batched one as it runs here (fused C kernels when built), and with torch operations
KERNELS = ["batched", "torch"]


def drivers(n: int, t: int, seed: int = 0) -> np.ndarray:
    """Monthly drivers (tmin, tmax, swdown, vpd, precip, lai, co2, igbp) with NaN gaps and odd land-cover codes."""
    rng = np.random.default_rng(seed)
    season = np.sin(2 * np.pi * (np.arange(t)[None, :] % 12 - 3) / 12)
    tmin = rng.normal(5, 8, (n, 1)) + 10 * season + rng.normal(0, 1, (n, t))
    sw = np.clip(15 + 10 * season + rng.normal(0, 2, (n, t)), 0, None)
    igbp = np.repeat(rng.integers(-1, 14, (n, 1)).astype(float), t, axis=1)
    x = np.stack([tmin, tmin + rng.uniform(5, 12, (n, t)), sw, rng.gamma(2, 4, (n, t)),
                  rng.gamma(1, 2, (n, t)) - 0.2, rng.uniform(0.2, 5, (n, t)), np.full((n, t), 390.0), igbp],
                 axis=-1).astype(np.float32)
    x[rng.random((n, t)) < 0.3, 5] = np.nan  # LAI often missing
    x[rng.random((n, t)) < 0.05, 2] = np.nan  # a few missing required drivers
    x[: n // 4, :, 7] = np.nan  # unknown land cover
    x[n // 4: n // 3, :, 7] = 2.5  # a non-integer class code
    return x


def ensemble(kind: str = "tamrl", members: int = 4, nee_mode: str = "derived", seed: int = 0,
             derived=("month", "lat"), period: str = "monthly", kernel: str = "batched", chunk: int | None = None,
             calibration: dict | None = None) -> Ensemble:
    """A small random ensemble of network ``kind`` (the daily network: daily periods, 12 monthly slots)."""
    daily = kind == "tamrl_daily"
    cfg = ModelConfig(kind=kind, hidden=16, encoder_hidden=8, embedding=4, projection=8, window=12 if daily else 5,
                      nee_mode=nee_mode, derived_inputs=list(derived))
    enc = FeatureEncoder.fit(default_drivers(), drivers(20, 24, seed=99))
    torch.manual_seed(seed)
    nets = []
    for _ in range(members):
        net = build_network(cfg, n_model_features(enc, cfg), (3.0, 2.0, 1.5)[: cfg.n_outputs])
        for p in net.parameters():  # non-trivial modulation (FiLM layers start at zero otherwise)
            torch.nn.init.normal_(p, std=0.3)
        nets.append(net)
    meta = EnsembleMeta(drivers=default_drivers(), period="daily" if daily else period, window=cfg.window,
                        sign_convention=SignConvention.UPTAKE_POSITIVE, model=cfg, n_members=members,
                        calibration=calibration)
    return ensemble_class(kind)(nets, enc, meta, kernel=kernel, chunk=chunk)


def like(ens: Ensemble, kernel: str, chunk: int | None = None) -> Ensemble:
    return type(ens)(ens.members, ens.encoder, ens.meta, kernel=kernel, chunk=chunk)


def assert_close_to_loop(new, ref) -> None:
    """<= 1e-6 relative: every field within 1e-6 of the cell's flux scale (GPP + Reco; NEE and the spreads are
    differences, whose own relative error is meaningless near zero), GPP and Reco also elementwise."""
    scale = (ref.gpp + ref.reco).abs().clamp_min(1e-3)
    for k in FIELDS:
        err = (getattr(new, k) - getattr(ref, k)).abs()
        assert float((err / scale).max()) <= 1e-6, (k, float((err / scale).max()))
    for k in ("gpp", "reco"):
        rel = (getattr(new, k) - getattr(ref, k)).abs() / getattr(ref, k).abs().clamp_min(1e-6)
        assert float(rel.max()) <= 1e-6, (k, float(rel.max()))


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("kind,nee_mode", [("tamrl", "derived"), ("lstm", "derived"), ("tamrl", "free")])
def test_batched_agrees_with_the_member_loop(kind, nee_mode, kernel):
    ens = ensemble(kind, nee_mode=nee_mode, kernel=kernel, chunk=16)  # several chunks, a partial last one
    x = torch.from_numpy(drivers(37, 26))
    lat = np.linspace(-60, 75, 37)
    new = ens.predict_sequence(x, first_period="2015-03", lat=lat)
    ref = like(ens, "loop").predict_sequence(x, first_period="2015-03", lat=lat)
    assert_close_to_loop(new, ref)
    if nee_mode == "free":
        assert float((new.nee_free - ref.nee_free).abs().max()) <= 1e-6 * float(ref.nee_free.abs().max())
    assert torch.equal(new.nee, new.gpp - new.reco)  # the identity stays exact


@pytest.mark.parametrize("kernel", KERNELS)
def test_shipped_checkpoint_agrees_with_the_member_loop_over_partial_periods(kernel):
    ens = like(load_shipped(), kernel)
    x = torch.from_numpy(drivers(300, 16, seed=5))
    x[..., 5:] = torch.nan  # only the required drivers, as a host sends them
    lat = np.linspace(-55, 70, 300)
    ref_ens = like(ens, "loop")
    _, state = ens.predict_sequence(x[:, :14], first_period="2014-01", lat=lat, return_state=True)
    _, ref_state = ref_ens.predict_sequence(x[:, :14], first_period="2014-01", lat=lat, return_state=True)
    for frac in (0.2, 0.7, 1.0):  # partial-period drivers, evaluated several times, then the whole period
        new, _ = ens.step(x[:, 14] * frac, state)
        ref, _ = ref_ens.step(x[:, 14] * frac, ref_state)
        assert_close_to_loop(new, ref)


@pytest.mark.parametrize("names", [["month", "lat"], ["month", "lat", "toa"], ["toa"]])
@pytest.mark.parametrize("period", ["monthly", "daily"])
def test_feature_kernel_is_bit_for_bit_the_encoder(period, names):
    enc = FeatureEncoder.fit(default_drivers(), drivers(20, 24, seed=99))
    x = torch.from_numpy(drivers(40, 1, seed=3)[:, 0])
    x[3, 7], x[4, 7], x[5, 7], x[6, 4] = -1.0, 12.0, 11.9, -0.5  # out-of-range classes, a negative precipitation
    pidx = torch.arange(40, dtype=torch.int64) * 37 - 500  # negative (before 1970) and positive periods
    lat = torch.linspace(-89.0, 89.0, 40)
    expected = torch.cat([enc(x), derived_features(names, pidx, lat, period)], dim=-1)
    kern = FeatureKernel(enc, names, period)
    out = torch.empty_like(expected)
    kern(x, pidx, lat, out, Buffers(torch.device("cpu")))
    assert torch.equal(out, expected)
    if fused_available():  # the C kernel: libm's functions, ~1 ulp apart
        fused = FeatureKernel(enc, names, period, fused=True)
        out_c = torch.empty_like(expected)
        fused(x, pidx, lat, out_c, Buffers(torch.device("cpu")))
        np.testing.assert_allclose(out_c.numpy(), expected.numpy(), rtol=0, atol=2e-6)


def test_plan_equals_step_and_blocks_are_independent_of_the_partition():
    """What the component runs (a plan over fixed blocks, committing at period ends) equals the pure step bit for
    bit; evaluating the blocks as one state or as two (two ranks) gives identical results."""
    ens = ensemble(chunk=8)
    n = 30
    x_seq = torch.from_numpy(drivers(n, 9, seed=7))
    lat = np.linspace(-40, 60, n)
    blocks = [(0, 16), (16, 30)]  # chunks of 8 from each block's start: the step's chunks, 0-8-16-24-30
    state = ens.init_state(n, first_period="2016-01", lat=lat)
    ref_state = ens.init_state(n, first_period="2016-01", lat=lat)
    halves = [ens.init_state(e - s, first_period="2016-01", lat=lat[s:e]) for s, e in blocks]
    x = torch.zeros(n, x_seq.shape[-1])
    est = torch.zeros(5, n, dtype=torch.float64)
    plan = ens.plan(x, state, est, blocks)
    half_est = [torch.zeros(5, 16, dtype=torch.float64), torch.zeros(5, 14, dtype=torch.float64)]
    half_plans = [ens.plan(x[:16], halves[0], half_est[0]), ens.plan(x[16:], halves[1], half_est[1])]
    for t in range(9):
        for frac in (0.5, 1.0):  # a partial period (no commit), then its end (commit)
            x.copy_(x_seq[:, t] * frac)
            plan.run(commit=frac == 1.0)
            for p in half_plans:
                p.run(commit=frac == 1.0)
            assert torch.equal(torch.cat(half_est, dim=1), est)
        ref, ref_state = ens.step(x_seq[:, t], ref_state)
        for row, k in enumerate(("gpp", "reco", "gpp_std", "reco_std", "nee_std")):
            assert torch.equal(est[row], getattr(ref, k)), (t, k)
    for k in ("window", "h", "c", "period"):
        a, b = getattr(state, k), getattr(ref_state, k)
        assert torch.equal(a.isnan(), b.isnan()) and torch.equal(a.nan_to_num(), b.nan_to_num()), k


def test_graphed_plan_bookkeeping_replays_each_chunk_program():
    """The CUDA-graph path's logic on a CPU, with a capture that records the program and replays it: captures once
    per chunk and kind, and gives the plan's results."""
    captured = []

    class Recorded:
        def __init__(self, program, device):
            captured.append(len(program))
            self.program = program

        def replay(self):
            run(self.program)

    ens = ensemble(chunk=10)
    n = 25
    x_seq = torch.from_numpy(drivers(n, 4, seed=8))
    lat = np.linspace(-30, 30, n)
    x, est, est_ref = torch.zeros(n, 8), torch.zeros(5, n, dtype=torch.float64), torch.zeros(5, n, dtype=torch.float64)
    state, ref_state = (ens.init_state(n, first_period="2010-06", lat=lat) for _ in range(2))
    graphed = GraphedPlan(ens.plan(x, state, est), capture=Recorded)
    plan = ens.plan(x, ref_state, est_ref)
    for t in range(4):
        for commit in (False, False, True):
            x.copy_(x_seq[:, t])
            graphed.run(commit)
            plan.run(commit)
            assert torch.equal(est, est_ref)
    assert len(captured) == 9  # 3 chunks x (encode, step, step keeping the next state), each captured once
    assert torch.equal(state.h, ref_state.h)


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("calibrated", [False, True])
def test_evaluation_allocates_nothing_after_the_first(kernel, calibrated):
    """Nothing with the fused kernels; with torch operations (the GPU path, and the spread calibration stage on any
    device) only PyTorch's 0-dim wrappers of Python number operands, a few bytes on the host each, never a buffer
    (and nothing on a device)."""
    import dataclasses

    from torch.profiler import ProfilerActivity, profile

    shipped = load_shipped()
    assert shipped.meta.calibration is not None  # the shipped checkpoint is calibrated
    meta = shipped.meta if calibrated else dataclasses.replace(shipped.meta, calibration=None)
    ens = type(shipped)(shipped.members, shipped.encoder, meta, kernel=kernel)
    n = 300
    x = torch.from_numpy(drivers(n, 1)[:, 0])
    est = torch.zeros(5, n, dtype=torch.float64)
    state = ens.init_state(n, first_period="2015-01", lat=np.zeros(n))
    plan = ens.plan(x, state, est)
    plan.run()
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        plan.run()  # a later call of the period
        state.z_ready.fill_(False)
        plan.run(commit=True)  # the first call of a period, committing
    sizes = [e.cpu_memory_usage for e in prof.events() if e.cpu_memory_usage > 0]
    if ens.kernel.ops.name == "fused-cpu" and not calibrated:
        assert sizes == [], [(e.name, e.cpu_memory_usage) for e in prof.events() if e.cpu_memory_usage > 0][:5]
    else:
        assert max(sizes, default=0) <= (8 if ens.kernel.ops.name == "fused-cpu" else 32), sorted(sizes)[-5:]


def test_workspace_buffers_are_reused_per_block_shape():
    ens = ensemble(chunk=16)
    n = 40
    state = ens.init_state(n, first_period="2015-01", lat=np.zeros(n))
    x = torch.from_numpy(drivers(n, 1)[:, 0])
    ens.step(x, state)
    first = {k: t.data_ptr() for k, t in ens.workspace.buffers(16)._tensors.items()}
    ens.step(x * 0.5, state)
    assert {k: t.data_ptr() for k, t in ens.workspace.buffers(16)._tensors.items()} == first
    assert set(ens.workspace._by_cells) == {16, 8}  # two full chunks and the last one


def test_a_network_without_stack_hook_runs_through_the_member_loop():
    from tamrl_coupler.kernels.batched import MemberLoop

    class Plain(NETWORKS["lstm"]):
        stack = None

    ens = ensemble("lstm")
    plain = [Plain.__new__(Plain) for _ in ens.members]
    for p, m in zip(plain, ens.members, strict=True):
        p.__dict__.update(m.__dict__)
    with pytest.warns(UserWarning, match="no stack"):
        loop = Ensemble(plain, ens.encoder, ens.meta)
    assert isinstance(loop.kernel, MemberLoop)
    x = torch.from_numpy(drivers(6, 3))
    assert_close_to_loop(loop.predict_sequence(x, first_period="2015-01", lat=np.zeros(6)),
                         ens.predict_sequence(x, first_period="2015-01", lat=np.zeros(6)))


def test_the_estimate_rows_are_named_by_the_vocabulary():
    """The rows the kernels reduce into are the ensemble's named outputs: the shipped layout (gpp and reco heads,
    NEE derived) is the carried exports' order, and every export's ``carries`` is one of them."""
    from tamrl_coupler import vocabulary

    ens = ensemble()
    assert ens.outputs.rows == ("gpp", "reco", "gpp_std", "reco_std", "nee_std") == vocabulary.model_outputs()
    assert ens.outputs.differences == ((0, 1),) and ens.kernel.heads.n_positive == 2


def test_state_errors_and_host_side_cache_flag():
    ens = ensemble()
    n = 5
    state = ens.init_state(n, first_period="2015-01", lat=np.zeros(n))
    assert state.z_ready.device.type == "cpu" and state.derived_checked
    moved = EnsembleState.from_numpy(state.to_numpy())
    assert not moved.derived_checked and moved.z_ready.device.type == "cpu"
    with pytest.raises(Exception, match="do not fit"):
        ens.plan(torch.zeros(n, 3), state, torch.zeros(5, n, dtype=torch.float64))
    with pytest.raises(Exception, match="float64"):
        ens.plan(torch.zeros(n, 8), state, torch.zeros(5, n))


# ------------------------------------------------------------------------------------------------ the daily network
DAILY = ("month", "lat", "toa")
DAY0 = "2015-01-10"  # 22 days of January (a slot needs 15), then February: the embedding changes at the month end


def calibration() -> dict:
    from tamrl_coupler.model.calibration import SpreadCalibration
    from tamrl_coupler.vocabulary import IGBP_CLASSES

    rng = np.random.default_rng(4)
    coef = {v: np.r_[-0.7, 0.4, 0.25, rng.normal(0, 0.3, len(IGBP_CLASSES))] for v in ("gpp", "reco", "nee")}
    return SpreadCalibration(coef, "test").to_dict()


@pytest.mark.parametrize("kernel", KERNELS)
def test_daily_batched_agrees_with_the_member_loop(kernel):
    """The daily network's stack hook (slot MLP batched over members, TAM-RL's batched FiLM step) against its
    members one after another, over two month ends (slots written, embedding recomputed)."""
    ens = ensemble("tamrl_daily", derived=DAILY, kernel=kernel, chunk=16)
    assert type(ens.kernel).__name__ == "BatchedDailyTamrl"
    x = torch.from_numpy(drivers(37, 60, seed=11))
    lat = np.linspace(-60, 75, 37)
    new, state = ens.predict_sequence(x, first_period=DAY0, lat=lat, return_state=True)
    ref = like(ens, "loop").predict_sequence(x, first_period=DAY0, lat=lat)
    assert_close_to_loop(new, ref)
    assert torch.equal(new.nee, new.gpp - new.reco)
    assert bool(torch.isfinite(state.window[:, :2, 0]).all())  # January's and February's slots
    cold = ens.predict_sequence(x[:, 40:], first_period="2015-02-19", lat=lat)  # no history: the slots matter
    assert float((cold.gpp - new.gpp[:, 40:]).abs().max()) > 1e-3


@pytest.mark.parametrize("kind", ["tamrl", "tamrl_daily"])
def test_calibrated_spreads_are_one_stage_for_every_kernel(kind):
    """The spread calibration runs on the estimate rows whichever kernel made the means: the member loop's and the
    batched kernels' spreads are each exactly ``SpreadCalibration.sigma_torch`` of their own means (and so agree
    as closely as the means do); the means are those of the uncalibrated ensemble."""
    from tamrl_coupler.model.calibration import SpreadCalibration

    cal = calibration()
    sigma = SpreadCalibration.from_dict(cal).sigma_torch
    daily = kind == "tamrl_daily"
    x = torch.from_numpy(drivers(40, 30, seed=12))  # igbp: unknown, out of range, fractional and valid classes
    lat = np.linspace(-50, 60, 40)
    first = "2015-01-20" if daily else "2014-11"
    runs = {}
    for kernel in ("batched", "torch", "loop"):
        ens = ensemble(kind, derived=DAILY if daily else ("month", "lat"), kernel=kernel, calibration=cal)
        f = runs[kernel] = ens.predict_sequence(x, first_period=first, lat=lat)
        for t in range(x.shape[1]):
            want = sigma(f.gpp[:, t].contiguous(), f.reco[:, t].contiguous(), x[:, t, 7].double())
            for v in ("gpp", "reco", "nee"):
                assert torch.equal(getattr(f, f"{v}_std")[:, t], want[v]), (kernel, t, v)
        plain = like(ens, kernel)
        plain.calibration = None
        assert torch.equal(plain.predict_sequence(x, first_period=first, lat=lat).gpp, f.gpp)
    for kernel in ("batched", "torch"):
        assert_close_to_loop(runs[kernel], runs["loop"])


def test_daily_plan_equals_step_and_blocks_are_independent_of_the_partition():
    """The component's path for the daily model -- a plan over fixed blocks, the day's drivers accumulated and a
    month's slot written in place at each commit, calibrated spreads -- equals the pure step bit for bit, state
    included, and two ranks' halves equal one state."""
    ens = ensemble("tamrl_daily", derived=DAILY, chunk=8, calibration=calibration())
    n, days = 30, 40
    x_seq = torch.from_numpy(drivers(n, days, seed=13))
    lat = np.linspace(-40, 60, n)
    blocks = [(0, 16), (16, 30)]
    state, ref_state = (ens.init_state(n, first_period=DAY0, lat=lat) for _ in range(2))
    halves = [ens.init_state(e - s, first_period=DAY0, lat=lat[s:e]) for s, e in blocks]
    x = torch.zeros(n, x_seq.shape[-1])
    est = torch.zeros(5, n, dtype=torch.float64)
    plan = ens.plan(x, state, est, blocks)
    half_est = [torch.zeros(5, 16, dtype=torch.float64), torch.zeros(5, 14, dtype=torch.float64)]
    half_plans = [ens.plan(x[:16], halves[0], half_est[0]), ens.plan(x[16:], halves[1], half_est[1])]
    encodes = 0
    for t in range(days):
        for frac in (0.5, 1.0):  # part of the day (no commit), then its end (commit)
            x.copy_(x_seq[:, t] * frac)
            encodes += plan.needs_embedding()
            plan.run(commit=frac == 1.0)
            for p in half_plans:
                p.run(commit=frac == 1.0)
            assert torch.equal(torch.cat(half_est, dim=1), est)
        ref, ref_state = ens.step(x_seq[:, t], ref_state)
        for row, k in enumerate(("gpp", "reco", "gpp_std", "reco_std", "nee_std")):
            assert torch.equal(est[row], getattr(ref, k)), (t, k)
        for k in ("window", "h", "c", "period", "acc_sum", "acc_n", "z_ready", "z"):
            a, b = getattr(state, k), getattr(ref_state, k)
            assert torch.equal(a.isnan(), b.isnan()) and torch.equal(a.nan_to_num(), b.nan_to_num()), (t, k)
    assert encodes == 2  # the first day and the first of February: z once a month
    assert bool(torch.isfinite(state.window[:, 0, 0]).all()) and float(state.acc_n.max()) == 18.0  # 1-18 February


@pytest.mark.parametrize("kernel", KERNELS)
def test_daily_evaluation_allocates_nothing_after_the_first(kernel):
    """The daily plan over a month end: a later call, the commit that closes the month (slot written, sums reset),
    the next month's first call (its embedding): only PyTorch's 0-dim wrappers of Python numbers (8 bytes each,
    however many cells), no buffer."""
    from torch.profiler import ProfilerActivity, profile

    ens = ensemble("tamrl_daily", derived=DAILY, kernel=kernel, calibration=calibration())
    n = 300
    x = torch.from_numpy(drivers(n, 1)[:, 0])
    est = torch.zeros(5, n, dtype=torch.float64)
    state = ens.init_state(n, first_period="2015-01-12", lat=np.linspace(-60, 60, n))
    plan = ens.plan(x, state, est)
    for _ in range(19):  # 12 .. 30 January
        plan.run()
        plan.run(commit=True)
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        plan.run()  # a later call of 31 January
        plan.run(commit=True)  # the month's end
        plan.run()  # 1 February: the embedding of the new slots
    assert bool(torch.isfinite(state.window[:, 0, 0]).all()) and not bool(state.acc_n.any())  # January closed
    sizes = [e.cpu_memory_usage for e in prof.events() if e.cpu_memory_usage > 0]
    # the month-end commit and the calibration stage are torch operations with Python-number operands even with the
    # fused kernels: PyTorch wraps each number in a 0-dim tensor (8 bytes). Nothing that grows with the cells.
    assert max(sizes, default=0) <= (8 if ens.kernel.ops.name == "fused-cpu" else 32), sorted(sizes)[-5:]
