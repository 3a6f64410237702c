"""The ensemble the coupling component runs: stateful one-period steps, vectorised over cells, pure.

``predict_sequence`` literally loops :meth:`Ensemble.step`, so whole-sequence and one-period-at-a-time inference
are the same computation and agree bit for bit.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from tamrl_coupler.errors import InputError
from tamrl_coupler.model.config import ModelConfig
from tamrl_coupler.model.features import Driver, FeatureEncoder
from tamrl_coupler.physics.carbon import SignConvention, nee_from_components


def resolve_device(device: str | torch.device | None) -> torch.device:
    """'auto' -> CUDA when present; a CUDA request on a machine without one falls back to the CPU with a warning."""
    if device is None or str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        warnings.warn(f"device {device!r} requested but CUDA is not available; using the CPU", stacklevel=2)
        return torch.device("cpu")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise InputError(f"device {device!r}: only {torch.cuda.device_count()} CUDA device(s) visible")
    return dev


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

    @property
    def driver_names(self) -> list[str]:
        return [d.name for d in self.drivers]


@dataclass
class Fluxes:
    """Ensemble-mean fluxes and spreads (member standard deviation), float64, gC m-2 d-1, shape (n_cells[, T])."""

    gpp: torch.Tensor
    reco: torch.Tensor
    nee: torch.Tensor
    gpp_std: torch.Tensor
    reco_std: torch.Tensor
    nee_std: torch.Tensor
    nee_free: torch.Tensor | None = None  # only for "free" variants: the unconstrained NEE head (ensemble mean)

    def to_numpy(self) -> dict[str, np.ndarray]:
        return {k: v.detach().cpu().numpy() for k, v in self.__dict__.items() if v is not None}


@dataclass
class EnsembleState:
    """Per-cell state: the task-encoder window of raw drivers and every member's LSTM (h, c). Cell-first."""

    window: torch.Tensor  # (n_cells, W, D) float32, NaN = missing / before the first period
    h: torch.Tensor  # (n_cells, M, H) float32
    c: torch.Tensor  # (n_cells, M, H) float32

    @property
    def n_cells(self) -> int:
        return self.window.shape[0]

    def to_numpy(self) -> dict[str, np.ndarray]:
        """Copies (never views of the live tensors), safe to write to restart files or send to another rank."""
        return {k: getattr(self, k).detach().cpu().numpy().copy() for k in ("window", "h", "c")}

    @classmethod
    def from_numpy(cls, d: dict[str, np.ndarray], device: str | torch.device = "cpu") -> EnsembleState:
        missing = [k for k in ("window", "h", "c") if k not in d]
        if missing:
            raise InputError(f"ensemble state: array(s) {missing} missing; expected window, h, c")
        n = {k: np.asarray(d[k]).shape[0] for k in ("window", "h", "c")}
        if len(set(n.values())) != 1:
            raise InputError(f"ensemble state: leading (cell) dimensions differ: {n}")
        dev = torch.device(device)
        return cls(*(torch.as_tensor(np.asarray(d[k], dtype=np.float32), device=dev) for k in ("window", "h", "c")))

    def take(self, index: torch.Tensor | np.ndarray) -> EnsembleState:
        """The state of a subset of cells (e.g. for redistribution)."""
        idx = torch.as_tensor(index, device=self.window.device, dtype=torch.long)
        return EnsembleState(self.window[idx], self.h[idx], self.c[idx])

    @classmethod
    def concat(cls, states: list[EnsembleState]) -> EnsembleState:
        """Cells of several states one after another (the inverse of :meth:`take` over a partition)."""
        return cls(*(torch.cat([getattr(s, k) for s in states], dim=0) for k in ("window", "h", "c")))


class Ensemble:
    """Independently seeded members; mean = the flux, standard deviation = the spread."""

    def __init__(self, members: list[nn.Module], encoder: FeatureEncoder, meta: EnsembleMeta,
                 device: str | torch.device = "cpu"):
        self.device = resolve_device(device)
        self.members = [m.to(self.device).eval() for m in members]
        self.encoder = encoder
        self.meta = meta
        self.convention = SignConvention.parse(meta.sign_convention)

    @property
    def n_members(self) -> int:
        return len(self.members)

    @property
    def n_drivers(self) -> int:
        return len(self.meta.drivers)

    def init_state(self, n_cells: int) -> EnsembleState:
        h = self.members[0].hidden
        return EnsembleState(
            window=torch.full((n_cells, self.meta.window, self.n_drivers), float("nan"), device=self.device),
            h=torch.zeros((n_cells, self.n_members, h), device=self.device),
            c=torch.zeros((n_cells, self.n_members, h), device=self.device),
        )

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
        """Raw member outputs (n_cells, M, n_out) for one period, and the new state. Pure."""
        x = self._check(x, state)
        window = torch.cat([state.window[:, 1:], x.unsqueeze(1)], dim=1)
        feats = self.encoder(window)
        outs, hs, cs = [], [], []
        for m, member in enumerate(self.members):
            o, h, c = member.step(feats[:, -1], feats, state.h[:, m], state.c[:, m])
            outs.append(o)
            hs.append(h)
            cs.append(c)
        return torch.stack(outs, dim=1), EnsembleState(window, torch.stack(hs, dim=1), torch.stack(cs, dim=1))

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
        return self._reduce(out), new_state

    def predict_sequence(self, x_seq: torch.Tensor, state: EnsembleState | None = None,
                         return_state: bool = False):
        """(n_cells, T, D) -> Fluxes of (n_cells, T), by stepping one period at a time (identical results)."""
        if not isinstance(x_seq, torch.Tensor):
            x_seq = torch.as_tensor(np.asarray(x_seq))
        if x_seq.ndim != 3:
            raise InputError(f"drivers: expected shape (n_cells, T, {self.n_drivers}), got {tuple(x_seq.shape)}")
        state = self.init_state(x_seq.shape[0]) if state is None else state
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
