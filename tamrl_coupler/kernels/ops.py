"""Member-batched building blocks: stacked weights, one batched GEMM per gate product, the elementwise stages.

Layout: member-major ``(B, n, k)`` with B = members (or members x directions), so each product of all members is
one ``torch.baddbmm`` (a batched GEMM) and each elementwise stage is one call over all members.

Programs: every stage is *bound* to its tensors once and returned as a list of zero-argument calls (a
:data:`Program`). The component binds its fixed blocks once (:class:`~tamrl_coupler.kernels.plan.EvaluationPlan`),
so an evaluation runs the kernels alone, with no view or argument made per call; the same program is what a CUDA
graph captures. One-off calls bind and run at once (:func:`run`).

Why the hyperbolic tangents are computed through the logistic function: on a CPU, ``torch.tanh`` costs about four
``torch.sigmoid`` calls per element, and the LSTM's gate nonlinearities would cost as much as its matrix products.
With ``tanh(a) = 1 - 2 sigmoid(-2 a)`` and the factor -2 folded into the weights when they are stacked (exact: a
power of two), all four gates go through one ``sigmoid_`` call, and the rest is a couple of fused multiply-adds.
The identity is exact in real arithmetic; in float32 it differs from ``torch.tanh`` by ~1e-7 absolute.

:class:`TorchOps` are the elementwise stages as torch operations (any device: the GPU path, and the CPU fallback);
:mod:`tamrl_coupler.kernels.fused_cpu` has the same stages as single-pass C kernels for the CPU.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import torch
from torch import nn

TANH_SCALE = -2.0  # tanh(a) = 1 - 2 sigmoid(TANH_SCALE * a)

Program = list[Callable[[], object]]
Film = object  # a FiLM source as the ops make it: (gain, bias) views for TorchOps; None: no modulation


def run(program: Program) -> None:
    for call in program:
        call()


def _gate_order(hidden: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """torch's gate rows (i, f, g, o) -> (i, f, o, g), and the per-row factor (1 for i, f, o; -2 for g)."""
    h = hidden
    idx = torch.cat([torch.arange(0, 2 * h), torch.arange(3 * h, 4 * h), torch.arange(2 * h, 3 * h)]).to(device)
    scale = torch.ones(4 * h, device=device)
    scale[3 * h:] = TANH_SCALE
    return idx, scale


def lstm_weights(lstm: nn.LSTM, suffix: str = "") -> tuple[torch.Tensor, torch.Tensor]:
    """One direction of a one-layer ``nn.LSTM`` as a single GEMM on ``[x, h]``: W (I + H, 4H), b (4H,).

    Gates are reordered to (i, f, o, g) and the g rows scaled by -2 (see the module docstring).
    """
    w = torch.cat([getattr(lstm, f"weight_ih_l0{suffix}"), getattr(lstm, f"weight_hh_l0{suffix}")], dim=1)
    b = getattr(lstm, f"bias_ih_l0{suffix}") + getattr(lstm, f"bias_hh_l0{suffix}")
    idx, scale = _gate_order(lstm.hidden_size, w.device)
    return (w[idx] * scale[:, None]).t().contiguous(), (b[idx] * scale).contiguous()


def linear_weights(layer: nn.Linear, scale: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """``x @ W + b`` form of an ``nn.Linear``: W (in, out), b (out,), optionally scaled."""
    return (layer.weight.t() * scale).contiguous(), (layer.bias * scale).contiguous()


def batched_operands(pairs: list[tuple[torch.Tensor, torch.Tensor]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-member (W, b) -> W (M, in, out), b (M, 1, out): the operands of one ``baddbmm`` for all members."""
    return (torch.stack([w for w, _ in pairs]).detach().contiguous(),
            torch.stack([b for _, b in pairs])[:, None, :].detach().contiguous())


def shared_input_operands(pairs: list[tuple[torch.Tensor, torch.Tensor]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Members sharing one input: W (in, M * out), b (M * out,), one GEMM for all of them."""
    return (torch.cat([w for w, _ in pairs], dim=1).detach().contiguous(),
            torch.cat([b for _, b in pairs]).detach().contiguous())


def gemm(bias: torch.Tensor, x: torch.Tensor, w: torch.Tensor, out: torch.Tensor) -> Program:
    """out = bias + x @ w: ``addmm`` for 2-D x, one batched ``baddbmm`` for (B, n, k)."""
    op = torch.addmm if x.dim() == 2 else torch.baddbmm
    return [partial(op, bias, x, w, out=out)]


def lstm_cell(gates: torch.Tensor, c: torch.Tensor, c_out: torch.Tensor, h_out: torch.Tensor,
              tmp: torch.Tensor) -> Program:
    """The LSTM cell of all members as torch operations, in place, no allocation.

    gates (B, n, 4H): pre-activations in the order (i, f, o, -2 g) (:func:`lstm_weights`), overwritten;
    c (B, n, H): the cell state; c_out, h_out (B, n, H): c' = f c + i tanh(g), h' = o tanh(c') (any strides;
    c_out may be c itself); tmp (B, n, H): scratch.
    """
    h = c.shape[-1]
    i, f, o, s = gates[..., :h], gates[..., h:2 * h], gates[..., 2 * h:3 * h], gates[..., 3 * h:]
    return [
        gates.sigmoid_,
        partial(torch.mul, f, c, out=c_out),
        partial(c_out.add_, i),
        partial(c_out.addcmul_, i, s, value=-2.0),  # f c + i (1 - 2 sigmoid(-2 g)) = f c + i tanh(g)
        partial(torch.mul, c_out, TANH_SCALE, out=tmp),
        tmp.sigmoid_,
        partial(torch.addcmul, o, o, tmp, value=-2.0, out=h_out),  # o (1 - 2 sigmoid(-2 c')) = o tanh(c')
    ]


def softplus_(x: torch.Tensor, out: torch.Tensor) -> None:
    """``out = softplus(x)`` (beta 1, threshold 20, as ``F.softplus``) without a temporary."""
    torch._C._nn.softplus(x, 1.0, 20.0, out=out)


class Heads:
    """Output heads of all members: softplus(o @ W + b) * scale for the first ``n_positive`` outputs (the predicted
    targets, non-negative), linear for the rest (free heads), as the networks' ``flux_heads``. W (M, H, K) for the
    batched GEMM, and (M, K, H) for the C kernel."""

    def __init__(self, members: list[nn.Module]):
        self.w, self.b = batched_operands([linear_weights(m.head) for m in members])
        self.w_rows = self.w.transpose(1, 2).contiguous()
        self.scale = torch.stack([m.target_scale for m in members])[:, None, :].detach().contiguous()
        self.n_outputs = self.w.shape[-1]
        positive = {int(m.n_positive) for m in members}
        if len(positive) != 1:
            raise ValueError(f"members with different numbers of non-negative heads: {sorted(positive)}")
        self.n_positive = positive.pop()

    def finish(self, out: torch.Tensor) -> Program:
        """Linear head outputs (M, n, K) -> softplus on the non-negative heads, times the target scale, in place."""
        p = self.n_positive
        return [partial(softplus_, out[..., :p], out[..., :p]), partial(out.mul_, self.scale)]


class TorchOps:
    """The elementwise stages as torch operations on member-major (B, n, k) views, bound into programs."""

    name = "torch"

    def film(self, z: torch.Tensor, w: torch.Tensor, b: torch.Tensor, bufs) -> tuple[Program, Film, Film]:
        """FiLM of all members from the embedding z (n, M, E): one batched GEMM into [gain_in | bias_in | gain_h |
        bias_h] (M, n, 4H); returns the program and the (gain, bias) views of the input and of the hidden state."""
        m, e, h4 = w.shape
        hd, n = h4 // 4, z.shape[0]
        zm = bufs.get("z", (m, n, e))
        film = bufs.get("film", (m, n, h4))
        prog = [partial(zm.copy_, z.transpose(0, 1))] + gemm(b, zm, w, film)
        return prog, (film[..., :hd], film[..., hd:2 * hd]), (film[..., 2 * hd:3 * hd], film[..., 3 * hd:])

    def lstm_input(self, pre: torch.Tensor, film: Film, h: torch.Tensor, xh: torch.Tensor) -> Program:
        """xh (M, n, 2H) <- [relu(gain * pre + bias) (or relu(pre) without FiLM), h]."""
        hd = h.shape[-1]
        u = xh[..., :hd]
        if film is None:
            prog = [partial(torch.clamp_min, pre, 0.0, out=u)]
        else:
            gain, bias = film
            prog = [partial(torch.addcmul, bias, pre, gain, out=u), partial(u.clamp_min_, 0.0)]
        return prog + [partial(xh[..., hd:].copy_, h)]

    def lstm_cell(self, gates, c, c_out, h_out, bufs) -> Program:
        return lstm_cell(gates, c, c_out, h_out, bufs.get("cell_tmp", tuple(c_out.shape)))

    def cell_heads(self, gates: torch.Tensor, c: torch.Tensor, c_out: torch.Tensor | None,
                   h_out: torch.Tensor | None, film: Film, heads: Heads, out: torch.Tensor, bufs) -> Program:
        """The cell, then out (M, n, K) = heads(gain * h' + bias) (or heads(h') without FiLM). ``c_out``/``h_out``
        None: the next state is not kept (here it goes to scratch buffers)."""
        if c_out is None:
            c_out = bufs.get("c_scratch", tuple(c.shape))
        if h_out is None:
            h_out = bufs.get("h_scratch", tuple(c.shape))
        prog = self.lstm_cell(gates, c, c_out, h_out, bufs)
        o = h_out
        if film is not None:
            gain, bias = film
            o = bufs.get("film_h", tuple(h_out.shape))
            prog.append(partial(torch.addcmul, bias, h_out, gain, out=o))
        prog += gemm(heads.b, o, heads.w, out)
        return prog + heads.finish(out)

    def tanh_of(self, x: torch.Tensor) -> Program:
        """In place: x = -2 a -> tanh(a)."""
        return [x.sigmoid_, partial(x.mul_, -2.0), partial(x.add_, 1.0)]

    def reduce(self, out: torch.Tensor, est: torch.Tensor, bufs, n_spread: int,
               differences: tuple[tuple[int, int], ...]) -> Program:
        """(M, n, K) member outputs -> float64 estimate rows (model/outputs.py names them): the means of the first
        ``n_spread`` outputs; the population spreads of those and of each difference a - b of two outputs; then
        the means of the remaining outputs (free heads), as far as ``est`` has rows for them."""
        m, n, k = out.shape
        p, d = n_spread, len(differences)
        s = p + d  # rows with a spread
        rows = s + (k - p)
        r = bufs.get("reduce", (rows, m, n), torch.float64)
        mean = bufs.get("reduce_mean", (rows, n), torch.float64)
        spread = bufs.get("reduce_spread", (s, n), torch.float64)
        prog = [partial(r[:p].copy_, out[..., :p].permute(2, 0, 1))]
        prog += [partial(torch.sub, r[a], r[b], out=r[p + i]) for i, (a, b) in enumerate(differences)]
        prog += [partial(r[s + j].copy_, out[..., p + j]) for j in range(k - p)]
        prog += [partial(torch.mean, r, dim=1, out=mean), partial(r[:s].sub_, mean[:s, None, :]),
                 partial(r[:s].mul_, r[:s]), partial(torch.mean, r[:s], dim=1, out=spread), spread.sqrt_,
                 partial(est[:p].copy_, mean[:p]), partial(est[p:p + s].copy_, spread)]
        prog += [partial(est[p + s + j].copy_, mean[s + j]) for j in range(k - p) if p + s + j < est.shape[0]]
        return prog
