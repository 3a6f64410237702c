"""The daily ensemble: :class:`Ensemble` whose state window is the 12 calendar slots of monthly means.

Why a subclass: the stepping contract (init_state, step, predict_sequence, restart through the state arrays) is
the monthly ensemble's; only what the window holds and when z changes differ. The window (n, 12, D) holds the last
12 completed calendar months' mean drivers (NaN: not seen -- all NaN at a cold start), the state's ``acc_sum`` /
``acc_n`` the current month's running sums, and z, a function of the slots, is computed once per month.
"""

from __future__ import annotations

from functools import partial

import torch

from tamrl_coupler.errors import InputError
from tamrl_coupler.kernels.features import FeatureKernel
from tamrl_coupler.kernels.ops import Program
from tamrl_coupler.model.ensemble import Ensemble
from tamrl_coupler.model.features import FeatureEncoder
from tamrl_coupler.model.history import accumulate, bind_day_end, close_months
from tamrl_coupler.model.state import EnsembleState, period_unknown


def slot_features(encoder: FeatureEncoder, slots: torch.Tensor, lat: torch.Tensor) -> torch.Tensor:
    """Slots (..., 12, D) of monthly-mean drivers and latitude (...) -> encoder input (..., 12, F + 1).

    The same encoding as the days' drivers (standardised value, missing flag, one-hot class) plus latitude / 90
    (0 where unknown): the climate a slot describes depends on where it is."""
    f = encoder(slots)
    la = torch.nan_to_num(lat.to(torch.float32), nan=0.0) / 90.0
    return torch.cat([f, la[..., None, None].expand(*f.shape[:-1], 1)], dim=-1)


def monthly_embedding(net: torch.nn.Module, windows: torch.Tensor, month_index: torch.Tensor) -> torch.Tensor:
    """z of every day from the slots of its month: windows (B, K, 12, S) per month, month_index (B, T) the month
    (0..K-1) of each day -> (B, T, E). One encoder call per month, as stepping does."""
    b, k = windows.shape[:2]
    z = net.encode(windows.flatten(0, 1)).reshape(b, k, -1)
    return torch.gather(z, 1, month_index[..., None].expand(-1, -1, z.shape[-1]))


class DailyEnsemble(Ensemble):
    """Stateful daily stepping with the monthly-slot history (see the module docstring). The members run through
    the same batched evaluator and plans as the monthly ensemble's; only the task embedding's input (the slots)
    and the state's advance (running sums, slots, z kept until a month ends) differ."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # the slots' encoding: the drivers' (no derived inputs: a slot is a month, not a day), then latitude / 90
        self.slot_kernel = FeatureKernel(self.encoder, [], self.meta.period,
                                         fused=self.feature_kernel.fused is not None)

    def init_state(self, n_cells: int, first_period=None, lat=None) -> EnsembleState:
        """As :meth:`Ensemble.init_state`; the first day is always required (months end on calendar days)."""
        if first_period is None:
            raise InputError("init_state: the daily model closes its monthly history on calendar days: pass "
                             "first_period (e.g. np.datetime64('2015-01-01'), the first day to be stepped)")
        return super().init_state(n_cells, first_period=first_period, lat=lat)

    def check_derived(self, state: EnsembleState) -> None:
        if state.derived_checked:
            return
        unknown = period_unknown(state.period)
        if bool(unknown.any()):
            cell = int(torch.nonzero(unknown)[0])
            raise InputError(f"ensemble state: no calendar day at cell {cell}; the daily model needs one: create "
                             "the state with init_state(n, first_period=...)")
        super().check_derived(state)

    def bind_encode(self, blk: EnsembleState, z_out: torch.Tensor) -> Program:
        """z_out (n, M, E) from the chunk's slots: :func:`slot_features` into buffers, then the batched MLP."""
        n, w, d = blk.window.shape
        bufs = self.workspace.buffers(n)
        f = self.slot_kernel.n_features
        encoded = bufs.get("slot_encoded", (n * w, f))
        feats = bufs.get("slot_feats", (n, w, f + 1))
        lat = bufs.get("slot_lat", (n,))
        unused = bufs.get("slot_pidx", (n * w,), torch.int64)  # no derived inputs: never read
        return (self.slot_kernel.bind(blk.window.reshape(n * w, d), unused, bufs.get("slot_lat_rows", (n * w,)),
                                      encoded, bufs, tag="_slot")
                + [partial(feats[..., :f].copy_, encoded.view(n, w, f)),
                   partial(torch.nan_to_num, blk.lat, nan=0.0, out=lat), partial(lat.div_, 90.0),
                   partial(feats[..., f].copy_, lat[:, None].expand(n, w))]
                + self.kernel.bind_encode(feats, z_out, bufs))

    def next_state(self, x: torch.Tensor, state: EnsembleState, z: torch.Tensor) -> EnsembleState:
        """After day ``x``: the day accumulated, a month that ends today written into its slot, z kept for the
        cells whose month goes on (due again where one ended)."""
        acc_sum, acc_n = accumulate(state.acc_sum, state.acc_n, x)
        slots, acc_sum, acc_n, ended = close_months(state.window, acc_sum, acc_n, state.period)
        return EnsembleState(
            window=slots.clone() if slots is state.window else slots, h=torch.empty_like(state.h),
            c=torch.empty_like(state.c), z=z.clone(), z_ready=~ended.cpu(), period=state.period + 1, lat=state.lat,
            acc_sum=acc_sum, acc_n=acc_n, derived_checked=state.derived_checked,
        )

    def bind_commit(self, x: torch.Tensor, blk: EnsembleState, h_new: torch.Tensor, c_new: torch.Tensor
                    ) -> Program:
        """The chunk's state after its day, in place (:meth:`next_state`'s arithmetic; the cache flags of a GPU
        run come back to the host here, once a day)."""
        bufs = self.workspace.buffers(blk.n_cells)
        return (bind_day_end(blk.window, blk.acc_sum, blk.acc_n, blk.period, x, blk.z_ready, bufs)
                + [partial(blk.h.copy_, h_new), partial(blk.c.copy_, c_new), partial(blk.period.add_, self._one)])


def ensemble_class(kind: str) -> type[Ensemble]:
    """The ensemble that steps members of network ``kind``."""
    return DailyEnsemble if kind == "tamrl_daily" else Ensemble


__all__ = ["DailyEnsemble", "ensemble_class", "monthly_embedding", "slot_features"]
