"""The ensemble's core: independently seeded members evaluated together, and what a state's window means.

:class:`EnsembleCore` holds the members, their batched evaluator (:mod:`tamrl_coupler.kernels.batched`), the feature
encoding and the reduction of the members, and defines how a state is made (:meth:`EnsembleCore.init_state`) and how
its window is encoded into the task embedding and advanced by a period (:meth:`EnsembleCore.bind_encode`,
:meth:`EnsembleCore.bind_commit`, :meth:`EnsembleCore.next_state`: what the daily model changes). The jobs done
with it -- the component's bound evaluation, the pure step, offline sequences -- take a core
(:mod:`~tamrl_coupler.model.binding`, :mod:`~tamrl_coupler.model.stepping`, :mod:`~tamrl_coupler.model.sequences`);
:class:`~tamrl_coupler.model.ensemble.Ensemble` is the core with their entry points. Cells are evaluated in
cache-sized chunks whose buffers are made once (:mod:`tamrl_coupler.kernels.workspace`).
"""

from __future__ import annotations

from functools import partial

import numpy as np
import torch
from torch import nn

from tamrl_coupler.devices import resolve_device
from tamrl_coupler.errors import InputError
from tamrl_coupler.kernels.batched import stack
from tamrl_coupler.kernels.features import FeatureKernel
from tamrl_coupler.kernels.ops import Program
from tamrl_coupler.kernels.workspace import Workspace
from tamrl_coupler.model.calibration import SpreadCalibration
from tamrl_coupler.model.features import LAT_INPUTS, FeatureEncoder, derived_features, period_index
from tamrl_coupler.model.meta import EnsembleMeta
from tamrl_coupler.model.outputs import Outputs
from tamrl_coupler.model.reduction import MemberReduction
from tamrl_coupler.model.state import UNKNOWN_PERIOD, EnsembleState, period_unknown
from tamrl_coupler.physics.carbon import SignConvention

CHUNK_CPU = 256  # cells per kernel call on a CPU: the chunk's working set stays in cache
CHUNK_CUDA = 65536  # on a GPU: enough cells to fill the device


class EnsembleCore:
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
        names = [d.name for d in meta.drivers]
        self.outputs = Outputs.of(meta.model)  # the targets predicted and derived, and every row named by them
        self.reduction = MemberReduction(
            self.outputs, self.convention,
            None if meta.calibration is None else SpreadCalibration.from_dict(meta.calibration),
            names.index("igbp") if "igbp" in names else None, len(self.members))
        self.kernel = stack(self.members, kernel)
        self.feature_kernel = FeatureKernel(encoder, list(meta.model.derived_inputs), meta.period,
                                            fused=self.kernel.ops.name == "fused-cpu")
        self.chunk = int(chunk or (CHUNK_CUDA if self.device.type == "cuda" else CHUNK_CPU))
        if self.chunk < 1:
            raise InputError(f"chunk: expected a positive number of cells, got {chunk}")
        self.workspace = Workspace(self.device)
        self._window_offsets = torch.arange(meta.window, device=self.device) - meta.window
        self._one = torch.ones((), dtype=torch.int64, device=self.device)  # (a Python 1 would allocate per call)

    @property
    def calibration(self) -> SpreadCalibration | None:
        """The spread calibration the reduction applies (None: the spreads are the member standard deviation); set
        it before binding a plan."""
        return self.reduction.calibration

    @calibration.setter
    def calibration(self, value: SpreadCalibration | None) -> None:
        self.reduction.calibration = value

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
        """Rows of a step's estimate (:attr:`Outputs.all_rows`: the component keeps :attr:`Outputs.rows`)."""
        return len(self.outputs.all_rows)

    @property
    def spread_meaning(self) -> str:
        """What the *_std / *_spread values are, for file metadata."""
        return self.reduction.spread_meaning

    # ------------------------------------------------------------------ the state
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
        period = torch.full((n_cells,), UNKNOWN_PERIOD, dtype=torch.int64, device=self.device)
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

    def check_derived(self, state: EnsembleState) -> None:
        """The calendar and latitude the checkpoint derives inputs from are in the state (checked once)."""
        if state.derived_checked:
            return
        need = self.derived_inputs
        unknown = period_unknown(state.period)
        if "month" in need and bool(unknown.any()):
            cell = int(torch.nonzero(unknown)[0])
            raise InputError(f"ensemble state: no calendar period at cell {cell}; this checkpoint derives the "
                             "season: create the state with init_state(n, first_period=...)")
        if any(d in need for d in LAT_INPUTS) and bool(torch.isnan(state.lat).any()):
            cell = int(torch.nonzero(torch.isnan(state.lat))[0])
            raise InputError(f"ensemble state: no latitude at cell {cell}; this checkpoint uses latitude: create "
                             "the state with init_state(n, lat=...)")
        state.derived_checked = True

    def features(self, x: torch.Tensor, pidx: torch.Tensor, lat: torch.Tensor) -> torch.Tensor:
        """Raw drivers (..., D) of periods ``pidx`` (...) at latitude ``lat`` -> network features (..., F + K)."""
        f = self.encoder(x)
        if not self.derived_inputs:
            return f
        return torch.cat([f, derived_features(self.derived_inputs, pidx, lat, self.meta.period)], dim=-1)

    def chunks(self, n: int) -> list[tuple[int, int]]:
        """Cell ranges of one kernel call each, for ``n`` cells from the first."""
        return [(s, min(s + self.chunk, n)) for s in range(0, n, self.chunk)]

    # ------------------------------------------------------------------ the window: encoded, advanced
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

    def next_state(self, x: torch.Tensor, state: EnsembleState, z: torch.Tensor) -> EnsembleState:
        """The state after the period of drivers ``x`` (new tensors; h and c still to be written): the window
        shifted by one period, the embedding due again."""
        return EnsembleState(
            window=torch.cat([state.window[:, 1:], x.unsqueeze(1)], dim=1),
            h=torch.empty_like(state.h), c=torch.empty_like(state.c),
            z=torch.zeros_like(state.z), z_ready=torch.zeros_like(state.z_ready),
            period=state.period + 1, lat=state.lat, acc_sum=state.acc_sum.clone(), acc_n=state.acc_n.clone(),
            derived_checked=state.derived_checked,
        )

    def next_state_buffers(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Workspace tensors (n, M, H) that receive a chunk's next h and c before a commit."""
        bufs = self.workspace.buffers(n)
        shape = (n, self.n_members, self.kernel.hidden)
        return bufs.get("h_next", shape), bufs.get("c_next", shape)
