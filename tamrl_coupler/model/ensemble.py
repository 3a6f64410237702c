"""The ensemble the coupling component runs: :class:`~tamrl_coupler.model.core.EnsembleCore` (the members and
what a state's window means) with the entry points of the jobs done with it, one module each: the component's
evaluation bound once (:mod:`~tamrl_coupler.model.binding`), the pure step (:mod:`~tamrl_coupler.model.stepping`),
offline sequences (:mod:`~tamrl_coupler.model.sequences`) and the members' reduction and spread calibration
(:mod:`~tamrl_coupler.model.reduction`). The state is :mod:`~tamrl_coupler.model.state`.
"""

from __future__ import annotations

import torch

from tamrl_coupler.kernels.plan import EvaluationPlan
from tamrl_coupler.model import binding, sequences, stepping
from tamrl_coupler.model.core import EnsembleCore
from tamrl_coupler.model.meta import EnsembleMeta
from tamrl_coupler.model.reduction import Fluxes
from tamrl_coupler.model.state import EnsembleState

__all__ = ["Ensemble", "EnsembleMeta", "EnsembleState", "Fluxes"]


class Ensemble(EnsembleCore):
    """The ensemble's API (docs/ARCHITECTURE.md, the Model -> component contract); see the module docstring."""

    # ------------------------------------------------------------------ entry points of the jobs done with it
    def plan(self, x: torch.Tensor, state: EnsembleState, out: torch.Tensor,
             blocks: list[tuple[int, int]] | None = None) -> EvaluationPlan:
        """The coupling component's evaluation, bound once (:func:`~tamrl_coupler.model.binding.bind_plan`)."""
        return binding.bind_plan(self, x, state, out, blocks)

    def ensure_embedding(self, state: EnsembleState) -> torch.Tensor:
        """z (n, M, E) of the current period, cached in the state (:func:`~.stepping.ensure_embedding`)."""
        return stepping.ensure_embedding(self, state)

    def step(self, x: torch.Tensor, state: EnsembleState) -> tuple[Fluxes, EnsembleState]:
        """One period for every cell: fluxes (n_cells,) and the next state; ``state`` is not modified
        (:func:`~tamrl_coupler.model.stepping.step`)."""
        return stepping.step(self, x, state)

    def predict_sequence(self, x_seq: torch.Tensor, state: EnsembleState | None = None,
                         return_state: bool = False, first_period=None, lat=None, progress=None):
        """(n_cells, T, D) -> Fluxes of (n_cells, T), stepping one period at a time
        (:func:`~tamrl_coupler.model.sequences.predict_sequence`)."""
        return sequences.predict_sequence(self, x_seq, state, return_state, first_period, lat, progress)

    @torch.no_grad()
    def fluxes_from_members(self, out: torch.Tensor, x: torch.Tensor) -> Fluxes:
        """Member outputs (n, M, n_out) and their drivers (n, D) -> the ensemble's fluxes
        (:meth:`~tamrl_coupler.model.reduction.MemberReduction.from_members`; the whole-record evaluation)."""
        return self.reduction.from_members(out, x, self.device)
