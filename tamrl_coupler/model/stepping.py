"""The ensemble's pure one-period step: drivers and a state in, fluxes and the next state out (new tensors), the
given state unchanged but for its cache of the period's task embedding (a function of completed periods only, so
filling it never changes a result). The drivers are checked here; the component's plan
(:mod:`tamrl_coupler.model.binding`) runs the same programs on the same chunks without new tensors.
"""

from __future__ import annotations

import numpy as np
import torch

from tamrl_coupler.errors import InputError
from tamrl_coupler.kernels.ops import run
from tamrl_coupler.model.binding import bind_step
from tamrl_coupler.model.core import EnsembleCore
from tamrl_coupler.model.reduction import Fluxes
from tamrl_coupler.model.state import EnsembleState


@torch.no_grad()
def ensure_embedding(ens: EnsembleCore, state: EnsembleState) -> torch.Tensor:
    """z (n, M, E) of the current period: computed once per period from the completed window, cached in place."""
    e = ens.kernel.embedding
    if bool(state.z_ready.all()) and state.z.shape[-1] == e:
        return state.z
    ens.check_derived(state)
    if e == 0:  # no task encoder (plain LSTM)
        state.z_ready.fill_(True)
        return state.z
    cached = tuple(state.z.shape) == (state.n_cells, ens.n_members, e)
    z = state.z if cached else torch.empty((state.n_cells, ens.n_members, e), device=ens.device)
    for s, t in ens.chunks(state.n_cells):
        run(ens.bind_encode(state.block(s, t), z[s:t]))
    if cached:
        state.z_ready.fill_(True)
    return z


def check_drivers(ens: EnsembleCore, x: torch.Tensor | np.ndarray, state: EnsembleState) -> torch.Tensor:
    """Drivers (n_cells, D) of the state's cells -> float32 on the ensemble's device; an infinite value (NaN is
    missing) or a wrong shape is an error naming the driver and cell."""
    if not isinstance(x, torch.Tensor):
        x = torch.as_tensor(np.asarray(x))
    names = ens.meta.driver_names
    if x.ndim != 2 or x.shape[1] != ens.n_drivers:
        raise InputError(f"drivers: expected shape (n_cells, {ens.n_drivers}) for {names}, got {tuple(x.shape)}")
    if x.shape[0] != state.n_cells:
        raise InputError(f"drivers: {x.shape[0]} cells, but the state holds {state.n_cells}")
    x = x.to(device=ens.device, dtype=torch.float32)
    bad = torch.isinf(x)
    if bool(bad.any()):
        cell, col = (int(v) for v in torch.nonzero(bad)[0])
        raise InputError(f"driver '{names[col]}' is infinite at cell {cell} (use NaN for a missing value)")
    return x


@torch.no_grad()
def advance(ens: EnsembleCore, x: torch.Tensor | np.ndarray, state: EnsembleState
            ) -> tuple[torch.Tensor, EnsembleState]:
    """Estimate rows (R, n) float64 and the next state (new tensors)."""
    x = check_drivers(ens, x, state)
    ens.check_derived(state)
    z = ensure_embedding(ens, state)
    n = state.n_cells
    est = torch.empty((ens.estimate_rows, n), dtype=torch.float64, device=ens.device)
    new = ens.next_state(x, state, z)
    for s, t in ens.chunks(n):
        run(bind_step(ens, x[s:t], state.block(s, t), z[s:t], est[:, s:t], new.h[s:t], new.c[s:t]))
    return est, new


@torch.no_grad()
def step(ens: EnsembleCore, x: torch.Tensor | np.ndarray, state: EnsembleState) -> tuple[Fluxes, EnsembleState]:
    """One period for every cell: fluxes (n_cells,) and the next state; ``state`` is not modified."""
    est, new_state = advance(ens, x, state)
    return ens.reduction.fluxes(est), new_state
