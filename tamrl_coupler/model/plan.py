"""An evaluation bound once to fixed tensors: what the coupling component runs at every evaluation.

The component evaluates the same blocks of the same persistent tensors (its drivers on the device, the ensemble
state, the period estimate) at every step. Binding every chunk's programs once -- the features, the batched
kernels, the member reduction, the commit -- leaves an evaluation with the kernels alone: no view, buffer lookup or
argument conversion per call, and fixed addresses throughout (what a CUDA graph capture needs, see
:mod:`tamrl_coupler.model.cuda_graphs`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from tamrl_coupler.errors import InputError
from tamrl_coupler.model.kernels import Program, run

if TYPE_CHECKING:
    from tamrl_coupler.model.ensemble import Ensemble, EnsembleState


@dataclass
class ChunkProgram:
    """One chunk's programs: the period's task embedding; the step into the estimate, without keeping the next
    state (most evaluations) or keeping it for the commit that follows (a period's end)."""

    start: int
    stop: int
    encode: Program
    step: Program
    step_commit: Program
    commit: Program


class EvaluationPlan:
    """``Ensemble.evaluate(x, state, out)`` on fixed tensors, chunk by chunk within each block."""

    def __init__(self, ens: Ensemble, x: torch.Tensor, state: EnsembleState, out: torch.Tensor,
                 blocks: list[tuple[int, int]] | None = None):
        n = state.n_cells
        e = ens.kernel.embedding
        if tuple(state.z.shape[1:]) != (ens.n_members, e) or tuple(x.shape) != (n, ens.n_drivers):
            raise InputError(f"evaluate: drivers {tuple(x.shape)} / embedding cache {tuple(state.z.shape)} do not "
                             f"fit {n} cells, {ens.n_drivers} drivers, {ens.n_members} members (make the state "
                             "with init_state)")
        if out.dtype != torch.float64 or out.shape[0] < 5 or out.shape[1] != n:
            raise InputError(f"evaluate: the estimate must be float64 (5, {n}) rows, got "
                             f"{out.dtype} {tuple(out.shape)}")
        self.ens, self.state = ens, state
        self._z_ready = state.z_ready.numpy()
        self.x, self.out = x, out  # the plan holds what its programs point into
        self.buffers = []
        self.chunks: list[ChunkProgram] = []
        for b0, b1 in blocks if blocks is not None else [(0, n)]:
            for s, t in ens._chunks(b1 - b0):
                s, t = s + b0, t + b0
                blk = state.block(s, t)
                h_new, c_new = ens.next_state_buffers(t - s)
                self.buffers.append(ens.workspace.buffers(t - s))
                self.chunks.append(ChunkProgram(
                    s, t, ens.bind_encode(blk, blk.z) if e else [],
                    ens.bind_step(x[s:t], blk, blk.z, out[:, s:t], None, None),
                    ens.bind_step(x[s:t], blk, blk.z, out[:, s:t], h_new, c_new),
                    ens.bind_commit(x[s:t], blk, h_new, c_new)))

    def needs_embedding(self) -> bool:
        """Whether this evaluation is the first of its period (the task embedding is due); checked on the host."""
        ready = bool(self._z_ready.all())  # a numpy view of the host flags: nothing allocated
        if not ready:
            self.ens._check_derived(self.state)
        return not ready

    @torch.no_grad()
    def run(self, commit: bool = False) -> None:
        """One evaluation into the estimate rows; ``commit``: the period ends, the state advances in place."""
        encode = self.needs_embedding()
        for chunk in self.chunks:
            if encode:
                run(chunk.encode)
            if commit:
                run(chunk.step_commit)
                run(chunk.commit)
            else:
                run(chunk.step)
        if encode and not commit:
            self.state.z_ready.fill_(True)
