"""The daily ensemble: :class:`Ensemble` whose state window is the 12 calendar slots of monthly means.

Why a subclass: the stepping contract (init_state, step, predict_sequence, restart through the state arrays) is
the monthly ensemble's; only what the window holds and when z changes differ. The window (n, 12, D) holds the last
12 completed calendar months' mean drivers (NaN: not seen -- all NaN at a cold start), the state's ``acc_sum`` /
``acc_n`` the current month's running sums, and z, a function of the slots, is computed once per month.
"""

from __future__ import annotations

import torch

from tamrl_coupler.errors import InputError
from tamrl_coupler.model.ensemble import Ensemble, EnsembleState
from tamrl_coupler.model.features import FeatureEncoder
from tamrl_coupler.model.history import accumulate, close_months


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
    """Stateful daily stepping with the monthly-slot history (see the module docstring)."""

    def init_state(self, n_cells: int, first_period=None, lat=None) -> EnsembleState:
        """As :meth:`Ensemble.init_state`; the first day is always required (months end on calendar days)."""
        if first_period is None:
            raise InputError("init_state: the daily model closes its monthly history on calendar days: pass "
                             "first_period (e.g. np.datetime64('2015-01-01'), the first day to be stepped)")
        return super().init_state(n_cells, first_period=first_period, lat=lat)

    def _check_derived(self, state: EnsembleState) -> None:
        if bool((state.period < -(2 ** 61)).any()):
            cell = int(torch.nonzero(state.period < -(2 ** 61))[0])
            raise InputError(f"ensemble state: no calendar day at cell {cell}; the daily model needs one: create "
                             "the state with init_state(n, first_period=...)")
        super()._check_derived(state)

    @torch.no_grad()
    def ensure_embedding(self, state: EnsembleState) -> torch.Tensor:
        """z (n, M, E) of the current month from the slots, computed once per month and cached in place."""
        if bool(state.z_ready.all()) and state.z.shape[-1] == self.members[0].embedding:
            return state.z
        feats = slot_features(self.encoder, state.window, state.lat)
        z = torch.stack([m.encode(feats) for m in self.members], dim=1)
        if state.z.shape == z.shape:
            state.z.copy_(z)
            state.z_ready.fill_(True)
            return state.z
        return z

    @torch.no_grad()
    def step_members(self, x: torch.Tensor, state: EnsembleState) -> tuple[torch.Tensor, EnsembleState]:
        """One day: member outputs (n, M, n_out) and the next state (this day accumulated; a month that ends today
        written into its slot, and z due again). Pure, but for z's cache."""
        x = self._check(x, state)
        self._check_derived(state)
        z = self.ensure_embedding(state)
        feat = self.features(x, state.period, state.lat)
        outs, hs, cs = [], [], []
        for m, member in enumerate(self.members):
            o, h, c = member.step(feat, z[:, m], state.h[:, m], state.c[:, m])
            outs.append(o)
            hs.append(h)
            cs.append(c)
        acc_sum, acc_n = accumulate(state.acc_sum, state.acc_n, x)
        slots, acc_sum, acc_n, ended = close_months(state.window, acc_sum, acc_n, state.period)
        new = EnsembleState(
            window=slots.clone() if slots is state.window else slots, h=torch.stack(hs, dim=1),
            c=torch.stack(cs, dim=1), z=z.clone(), z_ready=~ended, period=state.period + 1, lat=state.lat,
            acc_sum=acc_sum, acc_n=acc_n,
        )
        return torch.stack(outs, dim=1), new


def ensemble_class(kind: str) -> type[Ensemble]:
    """The ensemble that steps members of network ``kind``."""
    return DailyEnsemble if kind == "tamrl_daily" else Ensemble


__all__ = ["DailyEnsemble", "ensemble_class", "monthly_embedding", "slot_features"]
