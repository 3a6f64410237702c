"""The ensemble bound to fixed tensors: one chunk's period step as a program, and the coupling component's
evaluation plan (every chunk of its fixed blocks bound once; :mod:`tamrl_coupler.kernels.plan` runs it).

A step of a chunk: features of the drivers into a buffer, every member's LSTM step and heads (the network's
batched evaluator), the members reduced into the float64 estimate rows, the spreads calibrated when the checkpoint
says so. The window's encoding and advance (:meth:`EnsembleCore.bind_encode`, :meth:`EnsembleCore.bind_commit`) are the
ensemble's own: they are what differs between the monthly and the daily model.
"""

from __future__ import annotations

from functools import partial

import torch

from tamrl_coupler.errors import InputError
from tamrl_coupler.kernels.ops import Program
from tamrl_coupler.kernels.plan import ChunkProgram, EvaluationPlan
from tamrl_coupler.model.core import EnsembleCore
from tamrl_coupler.model.state import EnsembleState


def bind_step(ens: EnsembleCore, x: torch.Tensor, blk: EnsembleState, z: torch.Tensor, est: torch.Tensor,
              h_out: torch.Tensor | None, c_out: torch.Tensor | None) -> Program:
    """One period of the chunk ``blk``: estimate rows ``est`` (R, n) float64 (spreads calibrated when the
    checkpoint says so), the next h and c into ``h_out``/``c_out`` (n, M, H; None: not kept)."""
    n = blk.n_cells
    bufs = ens.workspace.buffers(n)
    feat = bufs.get("feat", (n, ens.feature_kernel.n_features))
    out = bufs.get("members_out", (ens.n_members, n, ens.kernel.n_outputs))
    return (ens.feature_kernel.bind(x, blk.period, blk.lat, feat, bufs)
            + ens.kernel.bind_step(feat, z, blk.h, blk.c, out, h_out, c_out, bufs)
            + ens.kernel.ops.reduce(out, est, bufs, len(ens.outputs.predicted), ens.outputs.differences)
            + ens.reduction.bind_calibrate(x, est, bufs))


def bind_plan(ens: EnsembleCore, x: torch.Tensor, state: EnsembleState, out: torch.Tensor,
              blocks: list[tuple[int, int]] | None = None) -> EvaluationPlan:
    """The period estimate of drivers ``x`` (n, D) float32 into ``out`` (R, n) float64, on the ensemble's device,
    bound once: every later evaluation runs the kernels alone, and with ``commit`` (a period's end) advances
    ``state`` in place. ``blocks``: cell ranges evaluated separately (the component's fixed blocks); each is cut into
    chunks of :attr:`EnsembleCore.chunk` cells. The same arithmetic as :func:`~tamrl_coupler.model.stepping.step` on
    the same chunks. ``x`` is not checked here (the component validated its imports; a step checks)."""
    n = state.n_cells
    e = ens.kernel.embedding
    if tuple(state.z.shape[1:]) != (ens.n_members, e) or tuple(x.shape) != (n, ens.n_drivers):
        raise InputError(f"evaluation plan: drivers {tuple(x.shape)} / embedding cache {tuple(state.z.shape)} do "
                         f"not fit {n} cells, {ens.n_drivers} drivers, {ens.n_members} members (make the state "
                         "with init_state)")
    rows = len(ens.outputs.rows)
    if out.dtype != torch.float64 or out.shape[0] < rows or out.shape[1] != n:
        raise InputError(f"evaluation plan: the estimate must be float64 ({rows}, {n}) rows "
                         f"{list(ens.outputs.rows)}, got {out.dtype} {tuple(out.shape)}")
    chunks, buffers = [], []
    for b0, b1 in blocks if blocks is not None else [(0, n)]:
        for s, t in ens.chunks(b1 - b0):
            s, t = s + b0, t + b0
            blk = state.block(s, t)
            h_new, c_new = ens.next_state_buffers(t - s)
            buffers.append(ens.workspace.buffers(t - s))
            chunks.append(ChunkProgram(
                s, t, ens.bind_encode(blk, blk.z) if e else [],
                bind_step(ens, x[s:t], blk, blk.z, out[:, s:t], None, None),
                bind_step(ens, x[s:t], blk, blk.z, out[:, s:t], h_new, c_new),
                ens.bind_commit(x[s:t], blk, h_new, c_new)))
    return EvaluationPlan(chunks, state.z_ready, partial(ens.check_derived, state), ens.device,
                          keep=(x, out, state, buffers))
