"""CUDA graphs of an evaluation plan: each chunk's programs captured at their first run, replayed afterwards.

On a GPU an evaluation is a few hundred small kernels per chunk; replaying a captured graph launches them all at
once (one launch per chunk), at the fixed addresses the plan was bound to. The programs of a chunk are pure in
their inputs (the step writes the estimate and workspace buffers, the encoder the embedding cache), so the
warm-up run before a capture changes nothing; the commit (a few copies, once per period) runs eagerly.
Configured with ``device.cuda_graphs`` (off by default); only used on CUDA devices.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import torch

from tamrl_coupler.kernels.ops import Program, run
from tamrl_coupler.kernels.plan import EvaluationPlan


class Replayable(Protocol):
    def replay(self) -> None: ...


def capture_cuda(program: Program, device: torch.device) -> Replayable:
    """Warm up on a side stream (library handles, workspaces), then capture ``program`` into a CUDA graph."""
    side = torch.cuda.Stream(device)
    side.wait_stream(torch.cuda.current_stream(device))
    with torch.cuda.stream(side):
        run(program)
    torch.cuda.current_stream(device).wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        run(program)
    return graph


class GraphedPlan:
    """:class:`EvaluationPlan` with its chunk programs replayed from captured graphs; same results and calls."""

    def __init__(self, plan: EvaluationPlan,
                 capture: Callable[[Program, torch.device], Replayable] = capture_cuda):
        self.plan = plan
        self.capture = capture
        self.device = plan.device
        self.graphs: dict[tuple[int, str], Replayable] = {}

    def _replay(self, index: int, kind: str, program: Program) -> None:
        graph = self.graphs.get((index, kind))
        if graph is None:  # captured at the first use (a capture records; the replay below computes)
            graph = self.graphs[(index, kind)] = self.capture(program, self.device)
        graph.replay()

    @torch.no_grad()
    def run(self, commit: bool = False) -> None:
        encode = self.plan.needs_embedding()
        for i, chunk in enumerate(self.plan.chunks):
            if encode and chunk.encode:
                self._replay(i, "encode", chunk.encode)
            if commit:
                self._replay(i, "step_commit", chunk.step_commit)
                run(chunk.commit)
            else:
                self._replay(i, "step", chunk.step)
        if encode and not commit:
            self.plan.z_ready.fill_(True)
