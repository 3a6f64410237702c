"""Throughput of one Ensemble.step (the call the coupling component makes once per model period).

    OMP_NUM_THREADS=1 PYTHONPATH=$PWD python bench/model_step.py --cells 1000 10000 100000 --threads 1

Prints seconds per step and cells per second for the shipped checkpoint (or --checkpoint), minimal drivers.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from tamrl_coupler.model import load_checkpoint


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
          f"device {ens.device}, threads {args.threads}")
    print(f"{'cells':>8s} {'s/step':>9s} {'cells/s':>10s}")
    rng = np.random.default_rng(0)
    for n in args.cells:
        x = np.stack([rng.normal(5, 8, n), rng.normal(15, 8, n), rng.uniform(0, 30, n), rng.gamma(2, 4, n),
                      rng.gamma(1, 2, n)], axis=1)
        x = np.concatenate([x, np.full((n, ens.n_drivers - 5), np.nan)], axis=1)
        xt = torch.as_tensor(x, dtype=torch.float32, device=ens.device)
        state = ens.init_state(n)
        _, state = ens.step(xt, state)  # warm-up
        times = []
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            _, state = ens.step(xt, state)
            if ens.device.type == "cuda":
                torch.cuda.synchronize()
            times.append(time.perf_counter() - t0)
        best = min(times)
        print(f"{n:8d} {best:9.4f} {n / best:10.0f}")


if __name__ == "__main__":
    main()
