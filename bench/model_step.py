"""Cost of Ensemble.step, the call the coupling component makes at every coupling step.

    OMP_NUM_THREADS=1 PYTHONPATH=$PWD python bench/model_step.py --cells 1000 10000 100000 --threads 1

The component calls ``step`` at every coupling step with the partial period's drivers and commits the state at the
period end. The task embedding z depends only on completed periods, so it is computed by the first call of a period
and cached in the state; later calls of the period run only the forward LSTM step and heads. Printed: seconds of
the first call of a period (encoder + step) and of a later call (step only), best of ``--repeat``, for the shipped
checkpoint (or --checkpoint), minimal drivers.

To relate the step to what the machine can do, the same run measures the single-precision GEMM rate (a large
square ``torch.mm`` and one of the LSTM step's own shape) and counts the step's matrix work from the members'
weight shapes (2 flops per weight element per cell; the encoder's weights once per window entry, first call only).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from tamrl_coupler.model import load_checkpoint


def _best(ens, xt, state, repeat: int, new_period: bool) -> float:
    """Best of ``repeat`` calls of ``ens.step(xt, state)``; ``new_period``: as the first call of a period."""
    times = []
    for _ in range(repeat):
        if new_period:
            state.z_ready.fill_(False)  # a new period: the embedding is due
        t0 = time.perf_counter()
        ens.step(xt, state)
        if ens.device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return min(times)


def step_flops_per_cell(ens, first_call: bool) -> float:
    """Matrix flops of one step per cell: each 2-D weight used once (encoder weights W times, first call only)."""
    total = 0
    for member in ens.members:
        for name, p in member.named_parameters():
            if p.dim() != 2:
                continue
            if name.startswith("enc_"):
                if not first_call:
                    continue
                total += 2 * p.numel() * (1 if name.startswith("enc_out") else ens.meta.window)
            else:
                total += 2 * p.numel()
    return float(total)


def gemm_rate(m: int, k: int, n: int, device: str, repeat: int = 5) -> float:
    """Best float32 ``torch.mm`` rate in GFLOP/s for (m, k) @ (k, n)."""
    a = torch.randn(m, k, device=device)
    b = torch.randn(k, n, device=device)
    c = torch.empty(m, n, device=device)
    torch.mm(a, b, out=c)
    best = float("inf")
    reps = max(1, int(2e9 // (2 * m * k * n)))
    for _ in range(repeat):
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        for _ in range(reps):
            torch.mm(a, b, out=c)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        best = min(best, (time.perf_counter() - t0) / reps)
    return 2 * m * k * n / best / 1e9


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--cells", type=int, nargs="+", default=[1000, 10000, 100000])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--checkpoint")
    p.add_argument("--device", default="cpu")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    ens = load_checkpoint(args.checkpoint, device=args.device)
    print(f"checkpoint: {ens.n_members} members, hidden {ens.meta.model.hidden}, window {ens.meta.window}, "
          f"derived inputs {ens.meta.model.derived_inputs}, device {ens.device}, threads {args.threads}")
    hidden = ens.meta.model.hidden
    peak = gemm_rate(2048, 2048, 2048, str(ens.device))
    shaped = gemm_rate(256, 2 * hidden, 4 * hidden, str(ens.device))
    f_first, f_later = step_flops_per_cell(ens, True), step_flops_per_cell(ens, False)
    print(f"sgemm in this run: {peak:.1f} GFLOP/s (2048^3), {shaped:.1f} GFLOP/s (256 x {2 * hidden} x {4 * hidden}, "
          f"the LSTM step's shape per 256-cell block)")
    print(f"matrix work per cell: first call {f_first / 1e6:.2f} MFLOP, later call {f_later / 1e6:.3f} MFLOP")
    print(f"{'cells':>8s} {'first call s':>13s} {'later call s':>13s} {'cells/s (later)':>16s} "
          f"{'GFLOP/s first':>14s} {'GFLOP/s later':>14s} {'later/sgemm':>12s}")
    rng = np.random.default_rng(0)

    for n in args.cells:
        x = np.stack([rng.normal(5, 8, n), rng.normal(15, 8, n), rng.uniform(0, 30, n), rng.gamma(2, 4, n),
                      rng.gamma(1, 2, n)], axis=1)
        x = np.concatenate([x, np.full((n, ens.n_drivers - 5), np.nan)], axis=1)
        xt = torch.as_tensor(x, dtype=torch.float32, device=ens.device)
        state = ens.init_state(n, first_period=np.datetime64("2015-01"), lat=rng.uniform(-60, 80, n))
        for _ in range(ens.meta.window):  # a full window of history
            _, state = ens.step(xt, state)
        t_first = _best(ens, xt, state, args.repeat, new_period=True)
        t_later = _best(ens, xt, state, args.repeat, new_period=False)
        g_first, g_later = f_first * n / t_first / 1e9, f_later * n / t_later / 1e9
        print(f"{n:8d} {t_first:13.4f} {t_later:13.4f} {n / t_later:16.0f} {g_first:14.1f} {g_later:14.1f} "
              f"{g_later / peak:12.0%}")


if __name__ == "__main__":
    main()
