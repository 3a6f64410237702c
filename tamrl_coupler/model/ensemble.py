"""The ensemble the coupling component runs: stateful one-period steps, vectorised over cells, pure.

``predict_sequence`` literally loops :meth:`Ensemble.step`, so whole-sequence and one-period-at-a-time inference
are the same computation and agree bit for bit.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from tamrl_coupler.config.model import ModelConfig
from tamrl_coupler.devices import resolve_device
from tamrl_coupler.errors import InputError
from tamrl_coupler.model.calibration import SpreadCalibration
from tamrl_coupler.model.features import LAT_INPUTS, Driver, FeatureEncoder, derived_features, period_index
from tamrl_coupler.physics.carbon import SignConvention, nee_from_components


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
    (partial-period drivers). Filling the cache never changes a result, so ``step`` stays pure.
    """

    window: torch.Tensor  # (n_cells, W, D) float32, NaN = missing / before the first period
    h: torch.Tensor  # (n_cells, M, H) float32
    c: torch.Tensor  # (n_cells, M, H) float32
    z: torch.Tensor | None = None  # (n_cells, M, E) float32, valid where z_ready
    z_ready: torch.Tensor | None = None  # (n_cells,) bool
    period: torch.Tensor | None = None  # (n_cells,) int64: the current period (months/days since 1970-01)
    lat: torch.Tensor | None = None  # (n_cells,) float32 degrees north, NaN = not given
    # daily models: the current month's running sums and counts of each driver (model/history.py); zeros otherwise
    acc_sum: torch.Tensor | None = None  # (n_cells, D) float32
    acc_n: torch.Tensor | None = None  # (n_cells, D) float32

    def __post_init__(self):
        n, dev = self.window.shape[0], self.window.device
        m = self.h.shape[1]
        if self.z is None:
            self.z = torch.zeros((n, m, 0), device=dev)
        if self.z_ready is None:
            self.z_ready = torch.zeros(n, dtype=torch.bool, device=dev)
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
        return cls(**{k: torch.as_tensor(np.asarray(d[k], dtype=dtypes.get(k, np.float32)), device=dev)
                      for k in keys})

    def take(self, index: torch.Tensor | np.ndarray | slice) -> EnsembleState:
        """The state of a subset of cells (e.g. for redistribution); a slice gives views (see :meth:`block`)."""
        if not isinstance(index, slice):
            index = torch.as_tensor(index, device=self.window.device, dtype=torch.long)
        return EnsembleState(**{k: getattr(self, k)[index] for k in _STATE_KEYS})

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
        return cls(**{k: torch.cat([getattr(s, k) for s in states], dim=0) for k in _STATE_KEYS})


class Ensemble:
    """Independently seeded members; mean = the flux, standard deviation = the spread."""

    def __init__(self, members: list[nn.Module], encoder: FeatureEncoder, meta: EnsembleMeta,
                 device: str | torch.device = "cpu"):
        self.device = resolve_device(device)
        self.members = [m.to(self.device).eval() for m in members]
        self.encoder = encoder
        self.meta = meta
        self.convention = SignConvention.parse(meta.sign_convention)
        self.calibration = None if meta.calibration is None else SpreadCalibration.from_dict(meta.calibration)
        names = [d.name for d in meta.drivers]
        self._igbp_col = names.index("igbp") if "igbp" in names else None

    @property
    def n_members(self) -> int:
        return len(self.members)

    @property
    def n_drivers(self) -> int:
        return len(self.meta.drivers)

    @property
    def derived_inputs(self) -> list[str]:
        return list(self.meta.model.derived_inputs)

    def init_state(self, n_cells: int, first_period=None, lat=None) -> EnsembleState:
        """The state before the first period. ``first_period`` (np.datetime64 or ISO string of the first period
        stepped) is required by checkpoints that derive the season, ``lat`` (degrees north, per cell) by those
        that use latitude: a host never sends them as drivers. Either may be given for any checkpoint."""
        h = self.members[0].hidden
        e = self.members[0].embedding
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
            period=period, lat=lat_t,
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
        need = self.derived_inputs
        if "month" in need and bool((state.period < -(2 ** 61)).any()):
            cell = int(torch.nonzero(state.period < -(2 ** 61))[0])
            raise InputError(f"ensemble state: no calendar period at cell {cell}; this checkpoint derives the "
                             "season: create the state with init_state(n, first_period=...)")
        if any(d in need for d in LAT_INPUTS) and bool(torch.isnan(state.lat).any()):
            cell = int(torch.nonzero(torch.isnan(state.lat))[0])
            raise InputError(f"ensemble state: no latitude at cell {cell}; this checkpoint uses latitude: create "
                             "the state with init_state(n, lat=...)")

    @torch.no_grad()
    def ensure_embedding(self, state: EnsembleState) -> torch.Tensor:
        """z (n, M, E) of the current period: computed once per period from the completed window, cached in place."""
        if bool(state.z_ready.all()) and state.z.shape[-1] == self.members[0].embedding:
            return state.z
        if self.members[0].embedding == 0:  # no task encoder (plain LSTM)
            state.z_ready.fill_(True)
            return state.z
        self._check_derived(state)
        w = self.meta.window
        pidx = state.period[:, None] - w + torch.arange(w, device=state.period.device)[None, :]
        feats = self.features(state.window, pidx, state.lat[:, None])
        z = torch.stack([m.encode(feats) for m in self.members], dim=1)
        if state.z.shape == z.shape:
            state.z.copy_(z)
            state.z_ready.fill_(True)
            return state.z
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

    @torch.no_grad()
    def step_members(self, x: torch.Tensor, state: EnsembleState) -> tuple[torch.Tensor, EnsembleState]:
        """Raw member outputs (n_cells, M, n_out) for one period, and the new state. Pure (but for z's cache).

        Per call only the forward LSTM step and heads run; the task encoder runs once per period.
        """
        x = self._check(x, state)
        z = self.ensure_embedding(state)
        feat = self.features(x, state.period, state.lat)
        outs, hs, cs = [], [], []
        for m, member in enumerate(self.members):
            o, h, c = member.step(feat, z[:, m], state.h[:, m], state.c[:, m])
            outs.append(o)
            hs.append(h)
            cs.append(c)
        new = EnsembleState(
            window=torch.cat([state.window[:, 1:], x.unsqueeze(1)], dim=1),
            h=torch.stack(hs, dim=1), c=torch.stack(cs, dim=1),
            z=torch.zeros_like(state.z), z_ready=torch.zeros_like(state.z_ready),
            period=state.period + 1, lat=state.lat,
        )
        return torch.stack(outs, dim=1), new

    def _reduce(self, out: torch.Tensor) -> Fluxes:
        """(n, M, n_out) member outputs -> ensemble mean/spread; NEE from the mean components, exactly."""
        out = out.to(torch.float64)
        gpp_m, reco_m = out[:, :, 0], out[:, :, 1]
        nee_m = nee_from_components(gpp_m, reco_m, self.convention)
        gpp, reco = gpp_m.mean(dim=1), reco_m.mean(dim=1)
        return Fluxes(
            gpp=gpp, reco=reco, nee=nee_from_components(gpp, reco, self.convention),
            gpp_std=gpp_m.std(dim=1, unbiased=False), reco_std=reco_m.std(dim=1, unbiased=False),
            nee_std=nee_m.std(dim=1, unbiased=False),
            nee_free=out[:, :, 2].mean(dim=1) if out.shape[-1] > 2 else None,
        )

    def step(self, x: torch.Tensor, state: EnsembleState) -> tuple[Fluxes, EnsembleState]:
        """One period for every cell: fluxes (n_cells,) and the next state; ``state`` is not modified."""
        out, new_state = self.step_members(x, state)
        return self.fluxes_from_members(out, x), new_state

    def fluxes_from_members(self, out: torch.Tensor, x: torch.Tensor) -> Fluxes:
        """Member outputs (n, M, n_out) and the drivers (n, D) they were made from -> the ensemble's fluxes (mean,
        NEE derived exactly, spreads calibrated when the checkpoint carries a calibration)."""
        fluxes = self._reduce(out)
        if self.calibration is not None:
            self._calibrate(fluxes, x)
        return fluxes

    def _calibrate(self, fluxes: Fluxes, x: torch.Tensor) -> None:
        """Replace the member spreads by the calibrated predictive standard deviations (in place)."""
        x = torch.as_tensor(x)
        igbp = (x[:, self._igbp_col].to(device=self.device, dtype=torch.float64) if self._igbp_col is not None
                else torch.full_like(fluxes.gpp, float("nan")))
        sig = self.calibration.sigma_torch(fluxes.gpp, fluxes.reco, igbp)
        fluxes.gpp_std, fluxes.reco_std, fluxes.nee_std = sig["gpp"], sig["reco"], sig["nee"]

    @property
    def spread_meaning(self) -> str:
        """What the *_std / *_spread values are, for file metadata."""
        if self.calibration is None:
            return f"ensemble spread: standard deviation over {self.n_members} members"
        return ("calibrated predictive standard deviation of the observed flux at a site the model did not see "
                "(error model fitted on cross-validation held-out sites; mean +- 1.645 sd is a 90 % interval)")

    def predict_sequence(self, x_seq: torch.Tensor, state: EnsembleState | None = None,
                         return_state: bool = False, first_period=None, lat=None):
        """(n_cells, T, D) -> Fluxes of (n_cells, T), by stepping one period at a time (identical results).

        Without ``state``, a new one starts at ``first_period`` for cells at ``lat`` (see :meth:`init_state`)."""
        if not isinstance(x_seq, torch.Tensor):
            x_seq = torch.as_tensor(np.asarray(x_seq))
        if x_seq.ndim != 3:
            raise InputError(f"drivers: expected shape (n_cells, T, {self.n_drivers}), got {tuple(x_seq.shape)}")
        if state is None:
            state = self.init_state(x_seq.shape[0], first_period=first_period, lat=lat)
        steps = []
        for t in range(x_seq.shape[1]):
            f, state = self.step(x_seq[:, t], state)
            steps.append(f)
        fields = {k: torch.stack([getattr(f, k) for f in steps], dim=1) if steps and getattr(steps[0], k) is not None
                  else None for k in Fluxes.__dataclass_fields__}
        if not steps:
            empty = torch.zeros((x_seq.shape[0], 0), dtype=torch.float64, device=self.device)
            fields = {k: empty for k in ("gpp", "reco", "nee", "gpp_std", "reco_std", "nee_std")}
        fluxes = Fluxes(**fields)
        return (fluxes, state) if return_state else fluxes
