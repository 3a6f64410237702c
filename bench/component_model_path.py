"""Where an evaluation's time goes inside the ensemble the component calls, and what the model could save.

    python bench/component_model_path.py --cells 256 --reps 20

Measures, on one block of ``--cells`` cells with the shipped checkpoint (1 torch thread): the whole
``Ensemble.step`` as the component calls it, then its parts (feature encoding, the members' task encoders split into
projection / bidirectional LSTM / output, the z-modulated one-period LSTM, the reduction), and three prototypes
built here from the members' own weights -- estimates for the model engineer, nothing the product runs:

A. forward encoder direction cached per period: within a period the first W-1 window entries are fixed, so the
   forward LSTM state after them (and their projections) can be kept; an evaluation then runs one forward step,
   the backward direction over the window and the output layer. Same function; float32 rounding may differ.
B. task embedding once per period, from the committed window (the last W complete periods): removes the task
   encoder from every evaluation but the first of a period. Changes the model (it was trained with the current
   partial period as the window's last entry): needs retraining.
C. members batched: the members' weights stacked, every layer a batched matmul over members and the LSTMs stepped
   by hand over the window; one pass instead of ten. Same function; float32 rounding differs.
Each prototype is checked against ``Ensemble.step`` (max abs difference of the member outputs, gC m-2 d-1).
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np
import torch
from torch.nn import functional as F


def timed(fn, reps: int) -> float:
    """Median seconds of ``reps`` calls (after one warm-up): the median resists a shared machine's noise."""
    fn()
    out = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return float(np.median(out))


def lstm_steps(xw: torch.Tensor, w_hh: torch.Tensor, h: torch.Tensor, c: torch.Tensor):
    """Hand-stepped LSTM, batched over members. xw: (M, N, T, 4H) input terms incl. both biases; w_hh (M, 4H, H)."""
    w_t = w_hh.transpose(1, 2)
    for t in range(xw.shape[2]):
        gates = torch.baddbmm(xw[:, :, t], h, w_t)
        i, f, g, o = gates.chunk(4, dim=-1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
    return h, c


class Batched:
    """All members' TAM-RL weights stacked on a leading member axis (prototype C)."""

    def __init__(self, members):
        def stack(get):
            return torch.stack([get(m).detach() for m in members])

        self.proj_w, self.proj_b = stack(lambda m: m.enc_proj.weight), stack(lambda m: m.enc_proj.bias)
        el = [m.enc_lstm for m in members]
        self.f_ih = torch.stack([e.weight_ih_l0 for e in el]).detach()
        self.f_hh = torch.stack([e.weight_hh_l0 for e in el]).detach()
        self.f_b = torch.stack([e.bias_ih_l0 + e.bias_hh_l0 for e in el]).detach()
        self.b_ih = torch.stack([e.weight_ih_l0_reverse for e in el]).detach()
        self.b_hh = torch.stack([e.weight_hh_l0_reverse for e in el]).detach()
        self.b_b = torch.stack([e.bias_ih_l0_reverse + e.bias_hh_l0_reverse for e in el]).detach()
        self.out_w, self.out_b = stack(lambda m: m.enc_out.weight), stack(lambda m: m.enc_out.bias)
        self.in_w, self.in_b = stack(lambda m: m.in_proj.weight), stack(lambda m: m.in_proj.bias)
        self.fi_w, self.fi_b = stack(lambda m: m.film_in.weight), stack(lambda m: m.film_in.bias)
        self.fh_w, self.fh_b = stack(lambda m: m.film_h.weight), stack(lambda m: m.film_h.bias)
        ls = [m.lstm for m in members]
        self.l_ih = torch.stack([x.weight_ih_l0 for x in ls]).detach()
        self.l_hh = torch.stack([x.weight_hh_l0 for x in ls]).detach()
        self.l_b = torch.stack([x.bias_ih_l0 + x.bias_hh_l0 for x in ls]).detach()
        self.head_w, self.head_b = stack(lambda m: m.head.weight), stack(lambda m: m.head.bias)
        self.scale = members[0].target_scale[:2]
        self.he = members[0].enc_lstm.hidden_size

    @staticmethod
    def linear(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor, shared: bool = False) -> torch.Tensor:
        """Each member's linear layer: x per member (M, N, [T,] In), or ``shared`` by all (N, [T,] In);
        w (M, Out, In) -> (M, N, [T,] Out)."""
        seq = x.dim() == (3 if shared else 4)
        src = ("nti" if seq else "ni") if shared else ("mnti" if seq else "mni")
        y = torch.einsum(f"{src},moi->{'mnto' if seq else 'mno'}", x, w)
        return y + (b[:, None, None, :] if seq else b[:, None, :])

    def encode(self, feats: torch.Tensor) -> torch.Tensor:
        m, n = self.proj_w.shape[0], feats.shape[0]
        p = torch.tanh(self.linear(feats, self.proj_w, self.proj_b, shared=True))  # (M, N, W, P)
        zeros = feats.new_zeros((m, n, self.he))
        hf, _ = lstm_steps(self.linear(p, self.f_ih, self.f_b), self.f_hh, zeros, zeros)
        hb, _ = lstm_steps(self.linear(p.flip(2), self.b_ih, self.b_b), self.b_hh, zeros, zeros)
        return torch.tanh(self.linear(torch.cat([hf, hb], dim=-1), self.out_w, self.out_b))  # (M, N, E)

    def step(self, feats: torch.Tensor, h0: torch.Tensor, c0: torch.Tensor, z: torch.Tensor | None = None):
        """feats (N, W, F); h0, c0 (N, M, H) -> member outputs (N, M, 2)."""
        z = self.encode(feats) if z is None else z
        g_in, b_in = self.linear(z, self.fi_w, self.fi_b).chunk(2, dim=-1)
        u = torch.relu((1.0 + g_in) * self.linear(feats[:, -1], self.in_w, self.in_b, shared=True) + b_in)
        xw = self.linear(u, self.l_ih, self.l_b).unsqueeze(2)
        h, _ = lstm_steps(xw, self.l_hh, h0.transpose(0, 1), c0.transpose(0, 1))
        g_h, b_h = self.linear(z, self.fh_w, self.fh_b).chunk(2, dim=-1)
        o = (1.0 + g_h) * h + b_h
        return (F.softplus(self.linear(o, self.head_w, self.head_b)) * self.scale).transpose(0, 1)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cells", type=int, default=256)
    p.add_argument("--reps", type=int, default=20)
    args = p.parse_args()
    torch.set_num_threads(1)
    from tamrl_coupler.model import load_checkpoint

    ens = load_checkpoint()
    n, members = args.cells, ens.members
    rng = np.random.default_rng(0)
    cols = {"tmin": rng.normal(5, 8, n), "tmax": rng.normal(15, 8, n), "swdown": rng.uniform(2, 25, n),
            "vpd": rng.uniform(1, 15, n), "precip": rng.gamma(2, 1.5, n), "lai": rng.uniform(0, 5, n),
            "co2": np.full(n, 400.0), "igbp": rng.integers(0, 10, n).astype(float)}
    x = torch.from_numpy(np.column_stack([cols.get(d, np.full(n, np.nan)) for d in ens.meta.driver_names]))
    st = ens.init_state(n)
    with torch.inference_mode():
        for _ in range(ens.meta.window + 2):  # a full window and a warm LSTM state
            _, st = ens.step(x * (0.9 + 0.2 * torch.rand(1, dtype=torch.float64)), st)
        r = {}
        r["Ensemble.step (as the component calls it)"] = timed(lambda: ens.step(x, st), args.reps)
        window = torch.cat([st.window[:, 1:], x.to(torch.float32).unsqueeze(1)], dim=1)
        feats = ens.encoder(window)
        r["  features of the window (FeatureEncoder)"] = timed(lambda: ens.encoder(window), args.reps)
        r["  task encoders, all members"] = timed(lambda: [m.encode(feats) for m in members], args.reps)
        proj = [torch.tanh(m.enc_proj(feats)) for m in members]
        r["    projection + tanh"] = timed(lambda: [torch.tanh(m.enc_proj(feats)) for m in members], args.reps)
        r["    bidirectional LSTM over the window"] = timed(
            lambda: [m.enc_lstm(q) for m, q in zip(members, proj, strict=True)], args.reps)
        z = [m.encode(feats) for m in members]
        r["  z-modulated LSTM step + heads, all members"] = timed(
            lambda: [m._modulated(feats[:, -1:], zz.unsqueeze(1), st.h[:, i], st.c[:, i])
                     for i, (m, zz) in enumerate(zip(members, z, strict=True))], args.reps)
        out, _ = ens.step_members(x, st)
        r["  reduction to mean / spread (float64)"] = timed(lambda: ens._reduce(out), args.reps)

        # A: forward direction cached per period
        fwd = [torch.nn.LSTM(q.shape[-1], m.enc_lstm.hidden_size, batch_first=True) for m, q in zip(members, proj,
                                                                                                    strict=True)]
        bwd = [torch.nn.LSTM(q.shape[-1], m.enc_lstm.hidden_size, batch_first=True) for m, q in zip(members, proj,
                                                                                                    strict=True)]
        for m, f, b in zip(members, fwd, bwd, strict=True):
            e = m.enc_lstm
            for name in ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"):
                getattr(f, name).copy_(getattr(e, name))
                getattr(b, name).copy_(getattr(e, name + "_reverse"))
        cached = [f(q[:, :-1])[1] for f, q in zip(fwd, proj, strict=True)]  # (h, c) after the committed entries

        def encode_cached():
            zs = []
            for m, f, b, (h, c) in zip(members, fwd, bwd, cached, strict=True):
                q = torch.tanh(m.enc_proj(feats))  # (the committed entries' projections could be cached too)
                _, (hf, _) = f(q[:, -1:], (h, c))
                _, (hb, _) = b(q.flip(1))
                zs.append(torch.tanh(m.enc_out(torch.cat([hf[0], hb[0]], dim=-1))))
            return zs

        za = encode_cached()
        diff_a = max(float((a - b).abs().max()) for a, b in zip(za, z, strict=True))
        t_a = timed(encode_cached, args.reps)

        # B: embedding per period (z computed once, reused): the evaluation without the task encoder
        t_b = r["Ensemble.step (as the component calls it)"] - r["  task encoders, all members"]

        # C: members batched
        bat = Batched(members)
        oc = bat.step(feats, st.h, st.c)
        diff_c = float((oc - out[..., :2]).abs().max())
        t_c = timed(lambda: bat.step(feats, st.h, st.c), args.reps)
        zc = bat.encode(feats)
        t_bc = timed(lambda: bat.step(feats, st.h, st.c, z=zc), args.reps)

    full = r["Ensemble.step (as the component calls it)"]
    ms = 1e3
    load = os.getloadavg()
    print(f"Command: `python bench/component_model_path.py --cells {n} --reps {args.reps}`\n")
    print(f"Checkpoint: {ens.n_members} members, hidden {members[0].hidden}, encoder hidden "
          f"{members[0].enc_lstm.hidden_size}, window {ens.meta.window}; {n} cells (one block); torch "
          f"{torch.__version__}, 1 thread; {platform.machine()}, {os.cpu_count()} cores; load average "
          f"{load[0]:.1f}. Median of {args.reps} calls.\n")
    print("| part | ms | share of the step |\n|---|---|---|")
    for k, v in r.items():
        print(f"| {k} | {v * ms:.2f} | {100 * v / full:.0f} % |")
    print("\n| option (prototype, this script) | evaluation [ms] | gain | max abs diff [gC m-2 d-1] |")
    print("|---|---|---|---|")
    t_a_step = full - r["  task encoders, all members"] + t_a
    print(f"| A. forward encoder direction cached per period | {t_a_step * ms:.2f} | {full / t_a_step:.2f}x | "
          f"z: {diff_a:.1e} |")
    print(f"| B. task embedding once per period (retraining needed) | {t_b * ms:.2f} | {full / t_b:.2f}x | "
          f"changes the model |")
    print(f"| C. members batched | {t_c * ms:.2f} | {full / t_c:.2f}x | {diff_c:.1e} |")
    print(f"| B + C | {t_bc * ms:.2f} | {full / t_bc:.2f}x | changes the model |")


if __name__ == "__main__":
    main()
