"""An evaluation bound once to fixed tensors: what the coupling component runs at every evaluation.

The component evaluates the same blocks of the same persistent tensors (its drivers on the device, the ensemble
state, the period estimate) at every step. Binding every chunk's programs once -- the features, the batched
kernels, the member reduction, the commit -- leaves an evaluation with the kernels alone: no view, buffer lookup or
argument conversion per call, and fixed addresses throughout (what a CUDA graph capture needs, see
:mod:`tamrl_coupler.kernels.cuda_graphs`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from tamrl_coupler.kernels.ops import Program, run


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
    """The ensemble's period estimate on fixed tensors, chunk by chunk within each block: the programs that
    ``tamrl_coupler.model.binding.bind_plan`` bound, run in order. ``z_ready``: the
    state's host flags (the embedding is due where False); ``check_derived``: the ensemble's check of the derived
    inputs before an embedding; ``keep``: what the programs point into (held alive with the plan)."""

    def __init__(self, chunks: list[ChunkProgram], z_ready: torch.Tensor, check_derived: Callable[[], None],
                 device: torch.device, keep: tuple[Any, ...] = ()):
        self.chunks, self.z_ready, self.device = chunks, z_ready, device
        self._z_ready = z_ready.numpy()
        self._check_derived = check_derived
        self._keep = keep

    def needs_embedding(self) -> bool:
        """Whether this evaluation is the first of its period (the task embedding is due); checked on the host."""
        ready = bool(self._z_ready.all())  # a numpy view of the host flags: nothing allocated
        if not ready:
            self._check_derived()
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
            self.z_ready.fill_(True)
