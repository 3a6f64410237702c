"""The ensemble's per-cell state: what a restart file holds of the model and what a redistribution moves."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from tamrl_coupler.errors import InputError

# The calendar period of a cell whose state was made without one (``init_state`` without ``first_period``, for a
# checkpoint that derives no season). Periods are counted in months or days since 1970-01 and a state advances by
# one per step, so "unknown" is any value below the half-way mark: far from every real period even after 2**61
# steps, and tested with one comparison on the device (no separate flag tensor to keep in step).
UNKNOWN_PERIOD = -(2 ** 62)
_UNKNOWN_BELOW = UNKNOWN_PERIOD // 2


def period_unknown(period: torch.Tensor) -> torch.Tensor:
    """(n,) bool: the cells whose calendar period was never given (see :data:`UNKNOWN_PERIOD`)."""
    return period < _UNKNOWN_BELOW


STATE_KEYS = ("window", "h", "c", "z", "z_ready", "period", "lat", "acc_sum", "acc_n")


@dataclass
class EnsembleState:
    """Per-cell state, cell-first: the raw drivers of the ``W`` completed periods before the current one, every
    member's LSTM (h, c), the task embedding z of the current period, and the cell's calendar period and latitude.

    ``z`` is a cache of a pure function of (window, period, lat): it is constant within a period, so it is computed
    once, by the first step of a period (``z_ready``), and reused by the period's later calls (partial-period
    drivers). Filling the cache never changes a result, so a step stays pure. ``z_ready`` lives on the host
    whatever the device, so asking whether the cache is filled never waits for a GPU.
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
            self.period = torch.full((n,), UNKNOWN_PERIOD, dtype=torch.int64, device=dev)
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
        return {k: getattr(self, k).detach().cpu().numpy().copy() for k in STATE_KEYS}

    @classmethod
    def from_numpy(cls, d: dict[str, np.ndarray], device: str | torch.device = "cpu") -> EnsembleState:
        missing = [k for k in ("window", "h", "c") if k not in d]
        if missing:
            raise InputError(f"ensemble state: array(s) {missing} missing; expected {list(STATE_KEYS)}")
        keys = [k for k in STATE_KEYS if k in d]
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
        return EnsembleState(**{k: getattr(self, k)[cpu_index if k == "z_ready" else index] for k in STATE_KEYS},
                             derived_checked=self.derived_checked)

    def block(self, start: int, stop: int) -> EnsembleState:
        """Cells [start, stop) as *views*: a step on the block fills this state's z cache in place."""
        return self.take(slice(start, stop))

    def commit(self, start: int, stop: int, new: EnsembleState) -> None:
        """Copy ``new`` (the state after a period) into cells [start, stop) in place (end of a period)."""
        for k in STATE_KEYS:
            getattr(self, k)[start:stop] = getattr(new, k)

    @classmethod
    def concat(cls, states: list[EnsembleState]) -> EnsembleState:
        """Cells of several states one after another (the inverse of :meth:`take` over a partition)."""
        return cls(**{k: torch.cat([getattr(s, k) for s in states], dim=0) for k in STATE_KEYS},
                   derived_checked=all(s.derived_checked for s in states))
