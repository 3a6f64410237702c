"""The ensemble the coupling component runs: stateful one-period steps, vectorised over cells, pure.

``predict_sequence`` literally loops :meth:`Ensemble.step`, so whole-sequence and one-period-at-a-time inference
are the same computation and agree bit for bit. All members are evaluated together by the network's batched
evaluator (:mod:`tamrl_coupler.model.batched`), on cache-sized chunks of cells whose buffers are made once
(:mod:`tamrl_coupler.model.workspace`); the component's own path, :meth:`Ensemble.evaluate`, allocates nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial

import numpy as np
import torch
from torch import nn

from tamrl_coupler.config.model import ModelConfig
from tamrl_coupler.devices import resolve_device
from tamrl_coupler.errors import InputError
from tamrl_coupler.model.batched import stack
from tamrl_coupler.model.feature_kernel import FeatureKernel
from tamrl_coupler.model.features import LAT_INPUTS, Driver, FeatureEncoder, derived_features, period_index
from tamrl_coupler.model.kernels import Program, run
from tamrl_coupler.model.plan import ChunkProgram, EvaluationPlan
from tamrl_coupler.model.site_error import SiteErrorModel, error_model_from_dict
from tamrl_coupler.model.workspace import Workspace
from tamrl_coupler.physics.carbon import SignConvention, nee_from_components

# rows of the period estimate that Ensemble.evaluate writes (gC m-2 d-1); a sixth, nee_free, for "free" variants
ESTIMATE_FIELDS = ("gpp", "reco", "gpp_std", "reco_std", "nee_std")
CHUNK_CPU = 256  # cells per kernel call on a CPU: the chunk's working set stays in cache
CHUNK_CUDA = 65536  # on a GPU: enough cells to fill the device


@dataclass
class EnsembleMeta:
    """What a checkpoint says about itself (and what the component needs to know)."""

    drivers: list[Driver]
    period: str
    window: int
    sign_convention: SignConvention
    model: ModelConfig
    n_members: int
    target_units: str = "gC m-2 d-1"
    trained_on: str = ""
    created_utc: str = ""
    extra: dict = field(default_factory=dict)
    # the spread calibration (model/calibration.py, JSON form) fitted on cross-validation errors; None: the
    # spreads are the member standard deviation
    calibration: dict | None = None

    @property
    def driver_names(self) -> list[str]:
        return [d.name for d in self.drivers]


@dataclass
class Fluxes:
    """Ensemble-mean fluxes and spreads, float64, gC m-2 d-1, shape (n_cells[, T]). The spreads are the calibrated
    predictive standard deviations of the observed flux when the checkpoint carries a spread calibration, else the
    member standard deviation."""

    gpp: torch.Tensor
    reco: torch.Tensor
    nee: torch.Tensor
    gpp_std: torch.Tensor
    reco_std: torch.Tensor
    nee_std: torch.Tensor
    nee_free: torch.Tensor | None = None  # only for "free" variants: the unconstrained NEE head (ensemble mean)

    def to_numpy(self) -> dict[str, np.ndarray]:
        return {k: v.detach().cpu().numpy() for k, v in self.__dict__.items() if v is not None}


_STATE_KEYS = ("window", "h", "c", "z", "z_ready", "period", "lat", "acc_sum", "acc_n")


@dataclass
class EnsembleState:
    """Per-cell state, cell-first: the raw drivers of the ``W`` completed periods before the current one, every
    member's LSTM (h, c), the task embedding z of the current period, and the cell's calendar period and latitude.

    ``z`` is a cache of a pure function of (window, period, lat): it is constant within a period, so it is computed
    once, by the first :meth:`Ensemble.step` of a period (``z_ready``), and reused by the period's later calls
    (partial-period drivers). Filling the cache never changes a result, so ``step`` stays pure. ``z_ready`` lives
    on the host whatever the device, so asking whether the cache is filled never waits for a GPU.
    """

    window: torch.Tensor  # (n_cells, W, D) float32, NaN = missing / before the first period
    h: torch.Tensor  # (n_cells, M, H) float32
    c: torch.Tensor  # (n_cells, M, H) float32
    z: torch.Tensor | None = None  # (n_cells, M, E) float32, valid where z_ready
    z_ready: torch.Tensor | None = None  # (n_cells,) bool, on the host
    period: torch.Tensor | None = None  # (n_cells,) int64: the current period (months/days since 1970-01)
    lat: torch.Tensor | None = None  # (n_cells,) float32 degrees north, NaN = not given
    # daily models: the current month's running sums and counts of each driver (model/history.py); zeros otherwise
    acc_sum: torch.Tensor | None = None  # (n_cells, D) float32
    acc_n: torch.Tensor | None = None  # (n_cells, D) float32
    # set once the calendar and latitude are known to be given (by init_state, or the first check): later
    # evaluations skip the check, which would read device memory
    derived_checked: bool = field(default=False, compare=False, repr=False)

    def __post_init__(self):
        n, dev = self.window.shape[0], self.window.device
        m = self.h.shape[1]
        if self.z is None:
            self.z = torch.zeros((n, m, 0), device=dev)
        if self.z_ready is None:
            self.z_ready = torch.zeros(n, dtype=torch.bool)
        elif self.z_ready.device.type != "cpu":
            self.z_ready = self.z_ready.cpu()
        if self.period is None:
            self.period = torch.full((n,), -(2 ** 62), dtype=torch.int64, device=dev)  # unknown
        if self.lat is None:
            self.lat = torch.full((n,), float("nan"), device=dev)
        if self.acc_sum is None:
            self.acc_sum = torch.zeros((n, self.window.shape[2]), device=dev)
        if self.acc_n is None:
            self.acc_n = torch.zeros((n, self.window.shape[2]), device=dev)

    @property
    def n_cells(self) -> int:
        return self.window.shape[0]

    def to_numpy(self) -> dict[str, np.ndarray]:
        """Copies (never views of the live tensors), safe to write to restart files or send to another rank."""
        return {k: getattr(self, k).detach().cpu().numpy().copy() for k in _STATE_KEYS}

    @classmethod
    def from_numpy(cls, d: dict[str, np.ndarray], device: str | torch.device = "cpu") -> EnsembleState:
        missing = [k for k in ("window", "h", "c") if k not in d]
        if missing:
            raise InputError(f"ensemble state: array(s) {missing} missing; expected {list(_STATE_KEYS)}")
        keys = [k for k in _STATE_KEYS if k in d]
        n = {k: np.asarray(d[k]).shape[0] for k in keys}
        if len(set(n.values())) != 1:
            raise InputError(f"ensemble state: leading (cell) dimensions differ: {n}")
        dev = torch.device(device)
        dtypes = {"z_ready": np.bool_, "period": np.int64}
        return cls(**{k: torch.as_tensor(np.asarray(d[k], dtype=dtypes.get(k, np.float32)),
                                         device="cpu" if k == "z_ready" else dev) for k in keys})

    def take(self, index: torch.Tensor | np.ndarray | slice) -> EnsembleState:
        """The state of a subset of cells (e.g. for redistribution); a slice gives views (see :meth:`block`)."""
        if isinstance(index, slice):
            cpu_index = index
        else:
            index = torch.as_tensor(index, device=self.window.device, dtype=torch.long)
            cpu_index = index.cpu()
        return EnsembleState(**{k: getattr(self, k)[cpu_index if k == "z_ready" else index] for k in _STATE_KEYS},
                             derived_checked=self.derived_checked)

    def block(self, start: int, stop: int) -> EnsembleState:
        """Cells [start, stop) as *views*: a step on the block fills this state's z cache in place."""
        return self.take(slice(start, stop))

    def commit(self, start: int, stop: int, new: EnsembleState) -> None:
        """Copy ``new`` (the state after a period) into cells [start, stop) in place (end of a period)."""
        for k in _STATE_KEYS:
            getattr(self, k)[start:stop] = getattr(new, k)

    @classmethod
    def concat(cls, states: list[EnsembleState]) -> EnsembleState:
        """Cells of several states one after another (the inverse of :meth:`take` over a partition)."""
        return cls(**{k: torch.cat([getattr(s, k) for s in states], dim=0) for k in _STATE_KEYS},
                   derived_checked=all(s.derived_checked for s in states))


class Ensemble:
    """Independently seeded members; mean = the flux, standard deviation = the spread (or, with a spread
    calibration in the checkpoint, the calibrated predictive standard deviation).

    ``kernel``: "batched" (every member at once, the network's ``stack`` hook; the fused C kernels on a CPU when
    built), "torch" (the same with torch operations only) or "loop" (member after member, the reference).
    ``chunk``: cells per kernel call (default: cache-sized on a CPU, large on a GPU); results are a function of the
    chunking, which is fixed from the first cell of each call (or block, for a plan).
    """

    def __init__(self, members: list[nn.Module], encoder: FeatureEncoder, meta: EnsembleMeta,
                 device: str | torch.device = "cpu", kernel: str = "batched", chunk: int | None = None):
        self.device = resolve_device(device)
        self.members = [m.to(self.device).eval() for m in members]
        self.encoder = encoder
        self.meta = meta
        self.convention = SignConvention.parse(meta.sign_convention)
        self.calibration = None if meta.calibration is None else error_model_from_dict(meta.calibration)
        names = [d.name for d in meta.drivers]
        self._igbp_col = names.index("igbp") if "igbp" in names else None
        self.kernel = stack(self.members, kernel)
        if isinstance(self.calibration, SiteErrorModel) and (
                self.calibration.novelty.centres.shape[::2] != (self.n_members, self.kernel.embedding)):
            raise InputError(f"site error model: reference embeddings {self.calibration.novelty.centres.shape} do "
                             f"not fit {self.n_members} members with embedding {self.kernel.embedding}")
        self.feature_kernel = FeatureKernel(encoder, list(meta.model.derived_inputs), meta.period,
                                            fused=self.kernel.ops.name == "fused-cpu")
        self.chunk = int(chunk or (CHUNK_CUDA if self.device.type == "cuda" else CHUNK_CPU))
        if self.chunk < 1:
            raise InputError(f"chunk: expected a positive number of cells, got {chunk}")
        self.workspace = Workspace(self.device)
        self._window_offsets = torch.arange(meta.window, device=self.device) - meta.window
        self._one = torch.ones((), dtype=torch.int64, device=self.device)  # (a Python 1 would allocate per call)

    @property
    def n_members(self) -> int:
        return len(self.members)

    @property
    def n_drivers(self) -> int:
        return len(self.meta.drivers)

    @property
    def derived_inputs(self) -> list[str]:
        return list(self.meta.model.derived_inputs)

    @property
    def estimate_rows(self) -> int:
        """Rows :meth:`evaluate` writes: :data:`ESTIMATE_FIELDS`, and nee_free for "free" variants."""
        return len(ESTIMATE_FIELDS) + (self.kernel.n_outputs > 2)

    @property
    def spread_meaning(self) -> str:
        """What the *_std / *_spread values are, for file metadata."""
        if self.calibration is None:
            return f"ensemble spread: standard deviation over {self.n_members} members"
        how = ("day-level and site-level error model, the site part growing with how unlike the training towers "
               "the cell is" if isinstance(self.calibration, SiteErrorModel) else "error model of the flux level")
        return (f"calibrated predictive standard deviation of the {self.meta.period} flux at an unseen site ({how}, "
                "fitted on cross-validation held-out sites; mean +- 1.645 sd is a 90 % interval)")

    def init_state(self, n_cells: int, first_period=None, lat=None) -> EnsembleState:
        """The state before the first period. ``first_period`` (np.datetime64 or ISO string of the first period
        stepped) is required by checkpoints that derive the season, ``lat`` (degrees north, per cell) by those
        that use latitude: a host never sends them as drivers. Either may be given for any checkpoint."""
        h = self.kernel.hidden
        e = self.kernel.embedding
        need = self.derived_inputs
        if first_period is None and "month" in need:
            raise InputError("init_state: this checkpoint derives the season from the calendar: pass "
                             "first_period (e.g. np.datetime64('2015-01'), the first period to be stepped)")
        period = torch.full((n_cells,), -(2 ** 62), dtype=torch.int64, device=self.device)
        if first_period is not None:
            try:
                period[:] = int(period_index(np.datetime64(first_period), self.meta.period))
            except (ValueError, TypeError) as exc:
                raise InputError(f"init_state: first_period {first_period!r} is not a date ({exc})") from None
        lat_t = torch.full((n_cells,), float("nan"), device=self.device)
        if lat is not None:
            lat_a = np.array(np.broadcast_to(np.asarray(lat, dtype=np.float64), (n_cells,)))
            bad = ~(np.abs(lat_a) <= 90.0)
            if bad.any():
                cell = int(np.flatnonzero(bad)[0])
                raise InputError(f"init_state: lat at cell {cell} is {lat_a[cell]}; expected degrees in [-90, 90]")
            lat_t[:] = torch.as_tensor(lat_a, dtype=torch.float32)
        elif any(d in need for d in LAT_INPUTS):
            raise InputError("init_state: this checkpoint uses latitude (derived input 'lat'): pass lat= (degrees "
                             "north, one per cell)")
        return EnsembleState(
            window=torch.full((n_cells, self.meta.window, self.n_drivers), float("nan"), device=self.device),
            h=torch.zeros((n_cells, self.n_members, h), device=self.device),
            c=torch.zeros((n_cells, self.n_members, h), device=self.device),
            z=torch.zeros((n_cells, self.n_members, e), device=self.device),
            period=period, lat=lat_t, derived_checked=True,
        )

    def set_period(self, state: EnsembleState, when) -> None:
        """Set the current calendar period of every cell in place (a run starting, or restarting, at ``when``)."""
        state.period[:] = int(period_index(np.datetime64(when), self.meta.period))
        state.z_ready[:] = False

    def features(self, x: torch.Tensor, pidx: torch.Tensor, lat: torch.Tensor) -> torch.Tensor:
        """Raw drivers (..., D) of periods ``pidx`` (...) at latitude ``lat`` -> network features (..., F + K)."""
        f = self.encoder(x)
        if not self.derived_inputs:
            return f
        return torch.cat([f, derived_features(self.derived_inputs, pidx, lat, self.meta.period)], dim=-1)

    def _check_derived(self, state: EnsembleState) -> None:
        if state.derived_checked:
            return
        need = self.derived_inputs
        if "month" in need and bool((state.period < -(2 ** 61)).any()):
            cell = int(torch.nonzero(state.period < -(2 ** 61))[0])
            raise InputError(f"ensemble state: no calendar period at cell {cell}; this checkpoint derives the "
                             "season: create the state with init_state(n, first_period=...)")
        if any(d in need for d in LAT_INPUTS) and bool(torch.isnan(state.lat).any()):
            cell = int(torch.nonzero(torch.isnan(state.lat))[0])
            raise InputError(f"ensemble state: no latitude at cell {cell}; this checkpoint uses latitude: create "
                             "the state with init_state(n, lat=...)")
        state.derived_checked = True

    def _chunks(self, n: int) -> list[tuple[int, int]]:
        return [(s, min(s + self.chunk, n)) for s in range(0, n, self.chunk)]

    # ------------------------------------------------------------------ one chunk of cells, bound once
    def bind_encode(self, blk: EnsembleState, z_out: torch.Tensor) -> Program:
        """Task embedding of the chunk's completed window -> z_out (n, M, E)."""
        n, w, d = blk.window.shape
        bufs = self.workspace.buffers(n)
        pidx = bufs.get("win_pidx", (n, w), torch.int64)
        lat = bufs.get("win_lat", (n, w))
        f = self.feature_kernel.n_features
        feats = bufs.get("win_feats", (n * w, f))
        return ([partial(torch.add, blk.period[:, None], self._window_offsets[None, :], out=pidx),
                 partial(lat.copy_, blk.lat[:, None].expand(n, w))]
                + self.feature_kernel.bind(blk.window.reshape(n * w, d), pidx.view(-1), lat.view(-1), feats, bufs,
                                           tag="_win")
                + self.kernel.bind_encode(feats.view(n, w, f), z_out, bufs))

    def bind_step(self, x: torch.Tensor, blk: EnsembleState, z: torch.Tensor, est: torch.Tensor,
                  h_out: torch.Tensor | None, c_out: torch.Tensor | None, members_out: torch.Tensor | None = None
                  ) -> Program:
        """One period of the chunk: estimate rows (R, n) float64 (spreads calibrated when the checkpoint says so),
        the next h and c (n, M, H; None: not kept); the member outputs (M, n, K) are copied to ``members_out``
        when given."""
        n = blk.n_cells
        bufs = self.workspace.buffers(n)
        feat = bufs.get("feat", (n, self.feature_kernel.n_features))
        out = bufs.get("members_out", (self.n_members, n, self.kernel.n_outputs))
        prog = (self.feature_kernel.bind(x, blk.period, blk.lat, feat, bufs)
                + self.kernel.bind_step(feat, z, blk.h, blk.c, out, h_out, c_out, bufs)
                + self.kernel.ops.reduce(out, est, bufs)
                + self._bind_calibrate(x, est, bufs, z))
        return prog + ([partial(members_out.copy_, out)] if members_out is not None else [])

    def _bind_calibrate(self, x: torch.Tensor, est: torch.Tensor, bufs, z: torch.Tensor) -> Program:
        """The spread rows replaced by the calibrated predictive standard deviations of the mean GPP and Reco and
        the land-cover class (the igbp driver; unknown without it) -- and, for a site error model, of the members'
        spreads and the embeddings ``z`` --, in place: the same arithmetic as the error model's ``sigma_torch``,
        whichever kernel made the means."""
        if self.calibration is None:
            return []
        n = est.shape[1]
        igbp = bufs.get("cal_igbp", (n,), torch.float64)
        prog: Program = ([partial(igbp.copy_, x[:, self._igbp_col])] if self._igbp_col is not None
                         else [partial(igbp.fill_, float("nan"))])
        if isinstance(self.calibration, SiteErrorModel):
            return prog + self.calibration.bind_sigma(est[0], est[1], igbp, est[2:5], z, bufs)
        return prog + self.calibration.bind_sigma(est[0], est[1], igbp, est[2:5], bufs)

    def bind_commit(self, x: torch.Tensor, blk: EnsembleState, h_new: torch.Tensor, c_new: torch.Tensor
                    ) -> Program:
        """The chunk's state after its period, in place: window shifted by one period, h, c, calendar."""
        n, w, d = blk.window.shape
        prog: Program = []
        if w > 1:
            shifted = self.workspace.buffers(n).get("window_shift", (n, w - 1, d))
            prog += [partial(shifted.copy_, blk.window[:, 1:]), partial(blk.window[:, :-1].copy_, shifted)]
        return prog + [partial(blk.window[:, -1].copy_, x), partial(blk.h.copy_, h_new),
                       partial(blk.c.copy_, c_new), partial(blk.period.add_, self._one), blk.z.zero_,
                       partial(blk.z_ready.fill_, False)]

    def next_state_buffers(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Workspace tensors (n, M, H) that receive a chunk's next h and c before a commit."""
        bufs = self.workspace.buffers(n)
        shape = (n, self.n_members, self.kernel.hidden)
        return bufs.get("h_next", shape), bufs.get("c_next", shape)

    # ------------------------------------------------------------------ the component's call
    def plan(self, x: torch.Tensor, state: EnsembleState, out: torch.Tensor,
             blocks: list[tuple[int, int]] | None = None) -> EvaluationPlan:
        """:meth:`evaluate` bound once to fixed tensors (the component's drivers, state and period estimate):
        every later evaluation runs the kernels alone. ``blocks``: cell ranges evaluated separately (the
        component's fixed blocks); each is cut into chunks of :attr:`chunk` cells."""
        n = state.n_cells
        e = self.kernel.embedding
        if tuple(state.z.shape[1:]) != (self.n_members, e) or tuple(x.shape) != (n, self.n_drivers):
            raise InputError(f"evaluate: drivers {tuple(x.shape)} / embedding cache {tuple(state.z.shape)} do not "
                             f"fit {n} cells, {self.n_drivers} drivers, {self.n_members} members (make the state "
                             "with init_state)")
        if out.dtype != torch.float64 or out.shape[0] < 5 or out.shape[1] != n:
            raise InputError(f"evaluate: the estimate must be float64 (5, {n}) rows, got "
                             f"{out.dtype} {tuple(out.shape)}")
        chunks, buffers = [], []
        for b0, b1 in blocks if blocks is not None else [(0, n)]:
            for s, t in self._chunks(b1 - b0):
                s, t = s + b0, t + b0
                blk = state.block(s, t)
                h_new, c_new = self.next_state_buffers(t - s)
                buffers.append(self.workspace.buffers(t - s))
                chunks.append(ChunkProgram(
                    s, t, self.bind_encode(blk, blk.z) if e else [],
                    self.bind_step(x[s:t], blk, blk.z, out[:, s:t], None, None),
                    self.bind_step(x[s:t], blk, blk.z, out[:, s:t], h_new, c_new),
                    self.bind_commit(x[s:t], blk, h_new, c_new)))
        return EvaluationPlan(chunks, state.z_ready, partial(self._check_derived, state), self.device,
                              keep=(x, out, state, buffers))

    @torch.no_grad()
    def evaluate(self, x: torch.Tensor, state: EnsembleState, out: torch.Tensor, commit: bool = False) -> None:
        """The coupling component's call: the period estimate of drivers ``x`` (n, D) into ``out`` (R, n)
        (float64 rows :data:`ESTIMATE_FIELDS`, on the ensemble's device); with ``commit`` (a period's end) the
        state advances in place. The same arithmetic as :meth:`step` chunk by chunk, without new tensors and without
        reading anything back from the device. ``x`` is float32 on the device and not checked here (the component
        validated its imports; :meth:`step` checks). Repeated calls on the same tensors: :meth:`plan` binds once."""
        self.plan(x, state, out).run(commit)

    # ------------------------------------------------------------------ the pure API
    @torch.no_grad()
    def ensure_embedding(self, state: EnsembleState) -> torch.Tensor:
        """z (n, M, E) of the current period: computed once per period from the completed window, cached in place."""
        e = self.kernel.embedding
        if bool(state.z_ready.all()) and state.z.shape[-1] == e:
            return state.z
        self._check_derived(state)
        if e == 0:  # no task encoder (plain LSTM)
            state.z_ready.fill_(True)
            return state.z
        cached = tuple(state.z.shape) == (state.n_cells, self.n_members, e)
        z = state.z if cached else torch.empty((state.n_cells, self.n_members, e), device=self.device)
        for s, t in self._chunks(state.n_cells):
            run(self.bind_encode(state.block(s, t), z[s:t]))
        if cached:
            state.z_ready.fill_(True)
        return z

    def _check(self, x: torch.Tensor, state: EnsembleState) -> torch.Tensor:
        if not isinstance(x, torch.Tensor):
            x = torch.as_tensor(np.asarray(x))
        if x.ndim != 2 or x.shape[1] != self.n_drivers:
            raise InputError(f"drivers: expected shape (n_cells, {self.n_drivers}) for {self.meta.driver_names}, "
                             f"got {tuple(x.shape)}")
        if x.shape[0] != state.n_cells:
            raise InputError(f"drivers: {x.shape[0]} cells, but the state holds {state.n_cells}")
        x = x.to(device=self.device, dtype=torch.float32)
        bad = torch.isinf(x)
        if bool(bad.any()):
            cell, col = (int(v) for v in torch.nonzero(bad)[0])
            raise InputError(f"driver '{self.meta.driver_names[col]}' is infinite at cell {cell} "
                             "(use NaN for a missing value)")
        return x

    def _next_state(self, x: torch.Tensor, state: EnsembleState, z: torch.Tensor) -> EnsembleState:
        """The state after the period of drivers ``x`` (new tensors; h and c still to be written): the window
        shifted by one period, the embedding due again."""
        return EnsembleState(
            window=torch.cat([state.window[:, 1:], x.unsqueeze(1)], dim=1),
            h=torch.empty_like(state.h), c=torch.empty_like(state.c),
            z=torch.zeros_like(state.z), z_ready=torch.zeros_like(state.z_ready),
            period=state.period + 1, lat=state.lat, acc_sum=state.acc_sum.clone(), acc_n=state.acc_n.clone(),
            derived_checked=state.derived_checked,
        )

    def _advance(self, x: torch.Tensor, state: EnsembleState, members_out: torch.Tensor | None = None
                 ) -> tuple[torch.Tensor, EnsembleState]:
        """Estimate rows (R, n) and the next state (new tensors); optionally the member outputs (M, n, K)."""
        x = self._check(x, state)
        self._check_derived(state)
        z = self.ensure_embedding(state)
        n = state.n_cells
        est = torch.empty((self.estimate_rows, n), dtype=torch.float64, device=self.device)
        new = self._next_state(x, state, z)
        for s, t in self._chunks(n):
            run(self.bind_step(x[s:t], state.block(s, t), z[s:t], est[:, s:t], new.h[s:t], new.c[s:t],
                               None if members_out is None else members_out[:, s:t]))
        return est, new

    @torch.no_grad()
    def step_members(self, x: torch.Tensor, state: EnsembleState) -> tuple[torch.Tensor, EnsembleState]:
        """Raw member outputs (n_cells, M, n_out) for one period, and the new state. Pure (but for z's cache)."""
        out = torch.empty((self.n_members, state.n_cells, self.kernel.n_outputs), device=self.device)
        _, new = self._advance(x, state, members_out=out)
        return out.transpose(0, 1), new

    def _fluxes(self, est: torch.Tensor) -> Fluxes:
        """Estimate rows -> Fluxes; NEE from the mean components, exactly."""
        return Fluxes(gpp=est[0], reco=est[1], nee=nee_from_components(est[0], est[1], self.convention),
                      gpp_std=est[2], reco_std=est[3], nee_std=est[4],
                      nee_free=est[5] if est.shape[0] > 5 else None)

    @torch.no_grad()
    def step(self, x: torch.Tensor, state: EnsembleState) -> tuple[Fluxes, EnsembleState]:
        """One period for every cell: fluxes (n_cells,) and the next state; ``state`` is not modified."""
        est, new_state = self._advance(x, state)
        return self._fluxes(est), new_state

    @torch.no_grad()
    def fluxes_from_members(self, out: torch.Tensor, x: torch.Tensor, z: torch.Tensor | None = None) -> Fluxes:
        """Member outputs (n, M, n_out) and the drivers (n, D) they were made from -> the ensemble's fluxes (mean,
        NEE derived exactly, spreads calibrated when the checkpoint carries a calibration; a site error model needs
        the embeddings ``z`` (n, M, E)): what a step's kernels reduce to, for the whole-record evaluation
        (model/records.py), equal to float32 rounding."""
        out = out.to(torch.float64)
        gpp_m, reco_m = out[:, :, 0], out[:, :, 1]
        gpp, reco = gpp_m.mean(dim=1), reco_m.mean(dim=1)
        fluxes = Fluxes(gpp=gpp, reco=reco, nee=nee_from_components(gpp, reco, self.convention),
                        gpp_std=gpp_m.std(dim=1, unbiased=False), reco_std=reco_m.std(dim=1, unbiased=False),
                        nee_std=nee_from_components(gpp_m, reco_m, self.convention).std(dim=1, unbiased=False),
                        nee_free=out[:, :, 2].mean(dim=1) if out.shape[-1] > 2 else None)
        if self.calibration is not None:
            x = torch.as_tensor(x)
            igbp = (x[:, self._igbp_col].to(device=self.device, dtype=torch.float64) if self._igbp_col is not None
                    else torch.full_like(gpp, float("nan")))
            if isinstance(self.calibration, SiteErrorModel):
                sd = {"gpp": fluxes.gpp_std, "reco": fluxes.reco_std, "nee": fluxes.nee_std}
                sig = self.calibration.sigma_torch(gpp, reco, sd, z.to(self.device), igbp)
            else:
                sig = self.calibration.sigma_torch(gpp, reco, igbp)
            fluxes.gpp_std, fluxes.reco_std, fluxes.nee_std = sig["gpp"], sig["reco"], sig["nee"]
        return fluxes

    def predict_sequence(self, x_seq: torch.Tensor, state: EnsembleState | None = None,
                         return_state: bool = False, first_period=None, lat=None, progress=None):
        """(n_cells, T, D) -> Fluxes of (n_cells, T), by stepping one period at a time (identical results).

        Without ``state``, a new one starts at ``first_period`` for cells at ``lat`` (see :meth:`init_state`).
        ``progress``: a reporter with ``update(n)`` and ``close()`` (one update per period), e.g. the command
        line's :func:`~tamrl_coupler.driver.progress.make_progress`."""
        if not isinstance(x_seq, torch.Tensor):
            x_seq = torch.as_tensor(np.asarray(x_seq))
        if x_seq.ndim != 3:
            raise InputError(f"drivers: expected shape (n_cells, T, {self.n_drivers}), got {tuple(x_seq.shape)}")
        if state is None:
            state = self.init_state(x_seq.shape[0], first_period=first_period, lat=lat)
        n, t_len = x_seq.shape[0], x_seq.shape[1]
        names = list(ESTIMATE_FIELDS[:2]) + ["nee"] + list(ESTIMATE_FIELDS[2:])
        if self.kernel.n_outputs > 2:
            names.append("nee_free")
        fields = {k: torch.empty((n, t_len), dtype=torch.float64, device=self.device) for k in names}
        try:
            for t in range(t_len):
                f, state = self.step(x_seq[:, t], state)
                for k, col in fields.items():
                    col[:, t] = getattr(f, k)
                if progress is not None:
                    progress.update(1)
        finally:
            if progress is not None:
                progress.close()
        fluxes = Fluxes(**fields)
        return (fluxes, state) if return_state else fluxes
