"""The ensemble on this rank's fixed blocks: the period drivers in, the period estimate out.

Made once per component: the drivers' float32 staging buffer and the estimate rows (pinned host memory on a GPU,
so that each evaluation is one host->device and one device->host transfer), the device copies, and the evaluation
plan bound to them and to the ensemble state (optionally replayed from CUDA graphs). An evaluation allocates
nothing. On a CPU the staging buffer is the model's input and the estimate rows are the component's own arrays.
"""

from __future__ import annotations

import numpy as np
import torch

from tamrl_coupler.model.ensemble import Ensemble
from tamrl_coupler.model.state import EnsembleState


class ModelRunner:
    """``run(x, commit)``: drivers x (n, D) float64 -> :attr:`estimate` rows (the ensemble's ``outputs.rows``: its
    targets' means and spreads, n), in the targets' units (gC m-2 d-1 for the carbon fluxes)."""

    def __init__(self, ens: Ensemble, state: EnsembleState, blocks: list[tuple[int, int]],
                 cuda_graphs: bool = False):
        n, d = state.n_cells, ens.n_drivers
        self.device = dev = ens.device
        gpu = dev.type == "cuda"
        self.x_host = torch.zeros((n, d), dtype=torch.float32, pin_memory=gpu)
        self.x_dev = torch.zeros((n, d), dtype=torch.float32, device=dev) if gpu else self.x_host
        rows = len(ens.outputs.rows)
        self.estimate_host = torch.zeros((rows, n), dtype=torch.float64, pin_memory=gpu)
        self.estimate = self.estimate_host.numpy()  # the period estimate, shared with the component
        self.estimate_dev = (torch.zeros((rows, n), dtype=torch.float64, device=dev) if gpu
                             else self.estimate_host)
        self.plan = ens.plan(self.x_dev, state, self.estimate_dev, blocks)
        self.graphed = None
        if cuda_graphs and gpu:
            from tamrl_coupler.kernels.cuda_graphs import GraphedPlan

            self.graphed = GraphedPlan(self.plan)

    def run(self, x: np.ndarray, commit: bool) -> None:
        """One evaluation; ``commit`` at a period's end advances the ensemble state in place."""
        with torch.inference_mode():
            self.x_host.copy_(torch.from_numpy(x))  # float64 -> float32 on the host
            if self.x_dev is not self.x_host:
                self.x_dev.copy_(self.x_host, non_blocking=True)  # the evaluation's one host->device transfer
            (self.graphed or self.plan).run(commit)
            if self.estimate_dev is not self.estimate_host:
                self.estimate_host.copy_(self.estimate_dev, non_blocking=True)  # and its one device->host
                torch.cuda.current_stream(self.device).synchronize()
