"""Offline sequences: a whole (n_cells, T, D) driver record through the ensemble by stepping it one period at a
time, so that whole-sequence and one-period-at-a-time inference are the same computation and agree bit for bit.
(The daily model's whole-record evaluation, all days at once through the network's sequence path, is
:mod:`tamrl_coupler.model.records`.)"""

from __future__ import annotations

import numpy as np
import torch

from tamrl_coupler.errors import InputError
from tamrl_coupler.model.core import EnsembleCore
from tamrl_coupler.model.reduction import Fluxes
from tamrl_coupler.model.state import EnsembleState
from tamrl_coupler.model.stepping import step


def predict_sequence(ens: EnsembleCore, x_seq: torch.Tensor | np.ndarray, state: EnsembleState | None = None,
                     return_state: bool = False, first_period=None, lat=None, progress=None):
    """(n_cells, T, D) -> Fluxes of (n_cells, T), by stepping one period at a time (identical results).

    Without ``state``, a new one starts at ``first_period`` for cells at ``lat`` (see :meth:`EnsembleCore.init_state`).
    ``progress``: a reporter with ``update(n)`` and ``close()`` (one update per period), e.g. the command
    line's :func:`~tamrl_coupler.host.progress.make_progress`."""
    if not isinstance(x_seq, torch.Tensor):
        x_seq = torch.as_tensor(np.asarray(x_seq))
    if x_seq.ndim != 3:
        raise InputError(f"drivers: expected shape (n_cells, T, {ens.n_drivers}), got {tuple(x_seq.shape)}")
    if state is None:
        state = ens.init_state(x_seq.shape[0], first_period=first_period, lat=lat)
    n, t_len = x_seq.shape[0], x_seq.shape[1]
    fields = {k: torch.empty((n, t_len), dtype=torch.float64, device=ens.device)
              for k in ens.outputs.flux_fields}
    try:
        for t in range(t_len):
            f, state = step(ens, x_seq[:, t], state)
            for k, col in fields.items():
                col[:, t] = getattr(f, k)
            if progress is not None:
                progress.update(1)
    finally:
        if progress is not None:
            progress.close()
    fluxes = Fluxes(**fields)
    return (fluxes, state) if return_state else fluxes
