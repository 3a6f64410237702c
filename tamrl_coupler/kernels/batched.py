"""All members of an ensemble evaluated at once: the evaluators the ensemble runs.

A network class says how its members are stacked through a ``stack(members) -> BatchedNet`` hook; the ensemble
calls only the :class:`BatchedNet` methods, so any network the product ships (TAM-RL, the plain LSTM, a daily
network with its own heads) runs through the same member-batched path by providing its own small evaluator built
from the pieces in :mod:`tamrl_coupler.kernels.ops`. :class:`MemberLoop` evaluates member after member with the
networks' own ``encode``/``step``: the reference the batched evaluators are tested against, and the fallback for a
network without a hook.

Shapes: n cells, M members, F features, W window periods, E embedding, H hidden, K outputs. The state is
cell-first ((n, M, H), as the ensemble state stores it); member outputs are member-major (M, n, K). The methods
bind their tensors and return a program (:data:`~tamrl_coupler.kernels.ops.Program`) that the ensemble runs now
or keeps for every evaluation of a fixed block.
"""

from __future__ import annotations

import warnings
from functools import partial
from typing import Protocol, runtime_checkable

import torch
from torch import nn

from tamrl_coupler.kernels.fused_cpu import ops_for
from tamrl_coupler.kernels.ops import (
    TANH_SCALE,
    Heads,
    Program,
    TorchOps,
    batched_operands,
    gemm,
    linear_weights,
    lstm_weights,
    shared_input_operands,
)
from tamrl_coupler.kernels.workspace import Buffers


@runtime_checkable
class BatchedNet(Protocol):
    """What the ensemble needs from a network's stacked members (``ops``: the elementwise stages, TorchOps or
    FusedCpuOps, which the ensemble also uses for the member reduction)."""

    ops: TorchOps
    n_members: int
    hidden: int
    embedding: int  # 0: no task encoder
    n_outputs: int

    def bind_encode(self, windows: torch.Tensor, z_out: torch.Tensor, bufs: Buffers) -> Program:
        """windows (n, W, F) features of the completed periods -> z_out (n, M, E), every member."""

    def bind_step(self, feat: torch.Tensor, z: torch.Tensor, h: torch.Tensor, c: torch.Tensor, out: torch.Tensor,
                  h_out: torch.Tensor | None, c_out: torch.Tensor | None, bufs: Buffers) -> Program:
        """One period: feat (n, F), z (n, M, E), state h, c (n, M, H) -> out (M, n, K), h_out, c_out (n, M, H)
        (None: the next state is not needed, an evaluation that does not commit).

        Pure: h and c are only read (h_out, c_out are other tensors)."""


def stack(members: list[nn.Module], kernel: str = "batched") -> BatchedNet:
    """The evaluator of ``members``: the network class's ``stack`` hook, or the member loop.

    ``kernel="loop"`` forces the member loop (the reference; the benchmarks' 'old kernel'); ``"torch"`` the
    batched evaluator with torch operations even where the fused C kernels exist.
    """
    if kernel not in ("batched", "torch", "loop"):
        raise ValueError(f"kernel {kernel!r}: expected 'batched', 'torch' or 'loop'")
    hook = getattr(type(members[0]), "stack", None)
    if kernel == "loop":
        return MemberLoop(members)
    if hook is None:
        warnings.warn(f"{type(members[0]).__name__} has no stack() hook: its members are evaluated one after "
                      "another (slow)", stacklevel=2)
        return MemberLoop(members)
    evaluator = hook(members)
    if kernel == "torch":
        evaluator.ops = TorchOps()
    return evaluator


def _members_first(t: torch.Tensor | None) -> torch.Tensor | None:
    return None if t is None else t.transpose(0, 1)


def _device(members: list[nn.Module]) -> torch.device:
    return next(members[0].parameters()).device


class _LstmStep:
    """The forward LSTM step shared by the stacked networks: gates = [u, h] @ W + b, one batched GEMM for all
    members, then the fused cell and heads (``ops``)."""

    def __init__(self, members: list[nn.Module]):
        with torch.no_grad():
            self.n_members = len(members)
            self.hidden = members[0].hidden
            self.w_in, self.b_in = shared_input_operands([linear_weights(m.in_proj) for m in members])
            self.w_lstm, self.b_lstm = batched_operands([lstm_weights(m.lstm) for m in members])
            self.heads = Heads(members)
        self.n_outputs = self.heads.n_outputs
        self.ops = ops_for(_device(members))

    def _forward(self, feat: torch.Tensor, h: torch.Tensor, c: torch.Tensor, out: torch.Tensor, h_out: torch.Tensor,
                 c_out: torch.Tensor, bufs: Buffers, film_in=None, film_h=None) -> Program:
        """u = relu(FiLM(W_in f)), the LSTM, FiLM on h, the heads (FiLM sources as ``ops.film`` makes them, or
        None: no modulation)."""
        n, m, hd = feat.shape[0], self.n_members, self.hidden
        pre = bufs.get("in_proj", (n, m * hd))
        xh = bufs.get("xh", (m, n, 2 * hd))
        gates = bufs.get("gates", (m, n, 4 * hd))
        return (gemm(self.b_in, feat, self.w_in, pre)
                + self.ops.lstm_input(pre.view(n, m, hd).transpose(0, 1), film_in, h.transpose(0, 1), xh)
                + gemm(self.b_lstm, xh, self.w_lstm, gates)
                + self.ops.cell_heads(gates, c.transpose(0, 1), _members_first(c_out), _members_first(h_out),
                                      film_h, self.heads, out, bufs))


class BatchedLstm(_LstmStep):
    """The plain-LSTM baseline's members stacked (``LstmNet.stack``)."""

    embedding = 0

    def bind_encode(self, windows, z_out, bufs) -> Program:  # no task encoder: z is empty
        return []

    def bind_step(self, feat, z, h, c, out, h_out, c_out, bufs) -> Program:
        return self._forward(feat, h, c, out, h_out, c_out, bufs)


class _FilmStep(_LstmStep):
    """The FiLM-modulated forward step of TAM-RL's networks (input projection and hidden state modulated by the
    task embedding z), batched over members; the subclasses add their task encoders."""

    def __init__(self, members: list[nn.Module]):
        super().__init__(members)
        with torch.no_grad():
            self.embedding = members[0].embedding
            # FiLM of the input and of the hidden state in one product; the gain columns carry the 1 of (1 + g)
            self.w_film, self.b_film = batched_operands([self._film(m) for m in members])

    def _film(self, m: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
        """[1 + g_in | b_in | 1 + g_h | b_h] = z @ W + b, W (E, 4H)."""
        hd = self.hidden
        w = torch.cat([m.film_in.weight, m.film_h.weight], dim=0).t()
        b = torch.cat([m.film_in.bias, m.film_h.bias]).clone()
        b[:hd] += 1.0
        b[2 * hd:3 * hd] += 1.0
        return w.contiguous(), b

    def bind_step(self, feat, z, h, c, out, h_out, c_out, bufs) -> Program:
        prog, film_in, film_h = self.ops.film(z, self.w_film, self.b_film, bufs)
        return prog + self._forward(feat, h, c, out, h_out, c_out, bufs, film_in, film_h)


class BatchedTamrl(_FilmStep):
    """TAM-RL members stacked (``TamrlNet.stack``): the task encoder batched over members, window steps and both
    directions; the forward step with its FiLM modulations batched over members."""

    def __init__(self, members: list[nn.Module]):
        super().__init__(members)
        with torch.no_grad():
            self.projection = members[0].enc_proj.out_features
            self.enc_hidden = members[0].enc_lstm.hidden_size
            # task encoder: projection (tanh from its -2-scaled pre-activation), both LSTM directions as 2M
            # batches, output (tanh likewise)
            self.w_proj, self.b_proj = shared_input_operands([linear_weights(m.enc_proj, TANH_SCALE)
                                                              for m in members])
            self.w_enc, self.b_enc = batched_operands([lstm_weights(m.enc_lstm, sfx) for sfx in ("", "_reverse")
                                                       for m in members])
            self.w_out, self.b_out = batched_operands([linear_weights(m.enc_out, TANH_SCALE) for m in members])

    def bind_encode(self, windows: torch.Tensor, z_out: torch.Tensor, bufs: Buffers) -> Program:
        n, w, f = windows.shape
        m, p, he = self.n_members, self.projection, self.enc_hidden
        proj = bufs.get("enc_proj", (n * w, m * p))
        proj4 = proj.view(n, w, m, p)
        # [x_t, h] of the forward (batches 0..M-1) and backward (M..2M-1) directions, h starting at 0
        xh = bufs.get("enc_xh", (2 * m, n, p + he))
        c = bufs.get("enc_c", (2 * m, n, he))
        gates = bufs.get("enc_gates", (2 * m, n, 4 * he))
        h = xh[..., p:]
        prog = gemm(self.b_proj, windows.reshape(n * w, f), self.w_proj, proj) + self.ops.tanh_of(proj)
        prog += [h.zero_, c.zero_]
        cell = gemm(self.b_enc, xh, self.w_enc, gates) + self.ops.lstm_cell(gates, c, c, h, bufs)
        for t in range(w):
            prog += [partial(xh[:m, :, :p].copy_, proj4[:, t].transpose(0, 1)),
                     partial(xh[m:, :, :p].copy_, proj4[:, w - 1 - t].transpose(0, 1))] + cell
        both = bufs.get("enc_last", (m, n, 2 * he))  # [h_forward(last), h_backward(first)]
        z = bufs.get("enc_z", (m, n, self.embedding))
        return (prog + [partial(both[..., :he].copy_, h[:m]), partial(both[..., he:].copy_, h[m:])]
                + gemm(self.b_out, both, self.w_out, z) + self.ops.tanh_of(z)
                + [partial(z_out.copy_, z.transpose(0, 1))])


class BatchedDailyTamrl(_FilmStep):
    """Daily TAM-RL members stacked (``DailyTamrlNet.stack``): the task encoder, an MLP over the flattened slot
    features, batched over members (the first layer, on the input every member shares, as one GEMM; the others
    as batched GEMMs; tanh from -2-scaled pre-activations); then TAM-RL's batched forward step."""

    def __init__(self, members: list[nn.Module]):
        super().__init__(members)
        with torch.no_grad():
            layers = [[layer for layer in m.enc if isinstance(layer, nn.Linear)] for m in members]
            if any(len(ls) != 3 for ls in layers) or any(not isinstance(a, nn.Tanh) for m in members
                                                         for a in list(m.enc)[1::2]):
                raise ValueError("BatchedDailyTamrl: expected a task encoder Linear-Tanh x 3")
            self.enc_hidden = layers[0][0].out_features
            self.w_enc1, self.b_enc1 = shared_input_operands([linear_weights(ls[0], TANH_SCALE) for ls in layers])
            self.w_enc2, self.b_enc2 = batched_operands([linear_weights(ls[1], TANH_SCALE) for ls in layers])
            self.w_enc3, self.b_enc3 = batched_operands([linear_weights(ls[2], TANH_SCALE) for ls in layers])

    def bind_encode(self, windows: torch.Tensor, z_out: torch.Tensor, bufs: Buffers) -> Program:
        """windows (n, 12, S) slot features -> z_out (n, M, E)."""
        n = windows.shape[0]
        m, he = self.n_members, self.enc_hidden
        a1 = bufs.get("enc_a1", (n, m * he))
        a1m = bufs.get("enc_a1m", (m, n, he))
        a2 = bufs.get("enc_a2", (m, n, he))
        z = bufs.get("enc_z", (m, n, self.embedding))
        return (gemm(self.b_enc1, windows.reshape(n, -1), self.w_enc1, a1) + self.ops.tanh_of(a1)
                + [partial(a1m.copy_, a1.view(n, m, he).transpose(0, 1))]
                + gemm(self.b_enc2, a1m, self.w_enc2, a2) + self.ops.tanh_of(a2)
                + gemm(self.b_enc3, a2, self.w_enc3, z) + self.ops.tanh_of(z)
                + [partial(z_out.copy_, z.transpose(0, 1))])


class MemberLoop:
    """Member after member through the networks' own ``encode``/``step`` (the reference evaluator)."""

    def __init__(self, members: list[nn.Module]):
        self.members = members
        self.ops = TorchOps()
        self.n_members = len(members)
        self.hidden = members[0].hidden
        self.embedding = members[0].embedding
        self.n_outputs = members[0].head.out_features

    def _encode(self, windows, z_out):
        for m, member in enumerate(self.members):
            z_out[:, m].copy_(member.encode(windows))

    def _step(self, feat, z, h, c, out, h_out, c_out):
        for m, member in enumerate(self.members):
            o, hm, cm = member.step(feat, z[:, m], h[:, m], c[:, m])
            out[m].copy_(o)
            if h_out is not None:
                h_out[:, m].copy_(hm)
                c_out[:, m].copy_(cm)

    def bind_encode(self, windows, z_out, bufs) -> Program:
        return [partial(self._encode, windows, z_out)]

    def bind_step(self, feat, z, h, c, out, h_out, c_out, bufs) -> Program:
        return [partial(self._step, feat, z, h, c, out, h_out, c_out)]
