"""Cost of one ensemble evaluation (what the coupling component runs), against the machine's sgemm rate in the
same run, for the member-batched kernels ("new") and the member loop ("old").

    OMP_NUM_THREADS=1 PYTHONPATH=$PWD python bench/model_step.py --cells 1e4 1e5 1e6 --old-cells 1e4 1e5 \\
        --out bench/results/model_step.md

new: the shipped checkpoint through ``Ensemble.plan`` (the component's path: batched GEMMs, fused elementwise
kernels, buffers and arguments bound once) in cache-sized chunks. old: the same ensemble with ``kernel="loop"`` and
one chunk of all cells: member after member, each a torch ``nn.LSTM`` call, as the product ran before.

First call of a period = task encoder + step; later call = step only (the embedding is cached per period). Each
figure is the best of ``--repeat`` runs; the float32 sgemm rate (a 2048^3 ``torch.mm``) is measured between them,
so both see the same machine. Times are wall-clock and, because a shared machine time-slices its cores, also CPU
time of this thread (``time.thread_time``): on an idle machine the two agree; under load the CPU-time ratio is the
one that says what the code does. Matrix work is counted from the members' weight shapes (2 flops per weight
element per cell; the encoder's weights once per window entry, first call only).
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch

from tamrl_coupler.model import Ensemble, load_checkpoint


def step_flops_per_cell(ens, first_call: bool) -> float:
    """Matrix flops of one step per cell: each 2-D weight used once (encoder weights W times, first call only)."""
    total = 0
    for member in ens.members:
        for name, p in member.named_parameters():
            if p.dim() != 2:
                continue
            if name.startswith(("enc_", "enc.")):  # the task encoder: at a period's first call only
                if not first_call:
                    continue
                # the monthly encoder's recurrent weights run once per window step; the daily model's slot MLP
                # (enc.*) and the monthly output layer once
                total += 2 * p.numel() * (1 if name.startswith(("enc_out", "enc.")) else ens.meta.window)
            else:
                total += 2 * p.numel()
    return float(total)


class Clocks:
    """Wall and thread CPU time of a call (synchronising a GPU)."""

    def __init__(self, device: torch.device):
        self.cuda = device.type == "cuda"

    def __call__(self, fn) -> tuple[float, float]:
        if self.cuda:
            torch.cuda.synchronize()
        w, c = time.perf_counter(), time.thread_time()
        fn()
        if self.cuda:
            torch.cuda.synchronize()
        return time.perf_counter() - w, time.thread_time() - c


def sgemm(device: torch.device, size: int = 2048):
    a, b = torch.randn(size, size, device=device), torch.randn(size, size, device=device)
    c = torch.empty(size, size, device=device)
    return (lambda: torch.mm(a, b, out=c)), 2.0 * size ** 3


def drivers(n: int, d: int, rng) -> torch.Tensor:
    x = np.stack([rng.normal(5, 8, n), rng.normal(15, 8, n), rng.uniform(0, 30, n), rng.gamma(2, 4, n),
                  rng.gamma(1, 2, n)], axis=1)
    return torch.as_tensor(np.concatenate([x, np.full((n, d - 5), np.nan)], axis=1), dtype=torch.float32)


def measure(ens: Ensemble, n: int, repeat: int, clocks: Clocks, gemm, rng) -> dict:
    """Best-of-``repeat`` first and later calls of an evaluation of n cells, sgemm interleaved."""
    dev = ens.device
    x = drivers(n, ens.n_drivers, rng).to(dev)
    first_period = np.datetime64("2015-01-01" if ens.meta.period == "daily" else "2015-01")
    state = ens.init_state(n, first_period=first_period, lat=rng.uniform(-60, 80, n))
    state.window[:] = x[:, None, :]  # a full window of history
    out = torch.zeros((5, n), dtype=torch.float64, device=dev)
    plan = ens.plan(x, state, out)

    def first():
        state.z_ready.fill_(False)  # a new period: the embedding is due
        plan.run()

    first()  # warm-up: buffers made, caches filled
    best = {"first": [np.inf, np.inf], "later": [np.inf, np.inf], "sgemm": [np.inf, np.inf]}
    for _ in range(repeat):
        for key, fn in (("sgemm", gemm), ("later", plan.run), ("sgemm", gemm), ("first", first)):
            w, c = clocks(fn)
            best[key] = [min(best[key][0], w), min(best[key][1], c)]
    state_bytes = sum(t.numel() * t.element_size() for t in (state.window, state.h, state.c, state.z, state.period,
                                                             state.lat, state.z_ready))
    return {"n": n, **best, "state_bytes_per_cell": state_bytes / n, "workspace_mb": ens.workspace.nbytes / 2**20}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cells", type=float, nargs="+", default=[1e4, 1e5, 1e6])
    p.add_argument("--old-cells", type=float, nargs="*", default=[1e4, 1e5],
                   help="sizes for the old member loop too (1e6 takes minutes per call)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--checkpoint")
    p.add_argument("--device", default="cpu")
    p.add_argument("--chunk", type=int, default=None, help="cells per kernel call (default: the device's)")
    p.add_argument("--out", help="write the table (markdown) here")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    base = load_checkpoint(args.checkpoint, device=args.device)
    kind_of = type(base)  # Ensemble, or DailyEnsemble for a daily checkpoint
    new = kind_of(base.members, base.encoder, base.meta, device=args.device, chunk=args.chunk)
    clocks = Clocks(new.device)
    gemm, gemm_flops = sgemm(new.device)
    f_first, f_later = step_flops_per_cell(new, True), step_flops_per_cell(new, False)
    head = (f"checkpoint: {new.n_members} members, hidden {new.meta.model.hidden}, window {new.meta.window}; device "
            f"{new.device}, {args.threads} thread(s); new kernels: {type(new.kernel).__name__} with "
            f"{new.kernel.ops.name} elementwise stages, chunks of {new.chunk} cells; matrix work per cell: first "
            f"call {f_first / 1e6:.2f} MFLOP, later call {f_later / 1e6:.3f} MFLOP")
    print(head, flush=True)
    rows = []
    rng = np.random.default_rng(0)
    sizes = [("new", int(n)) for n in args.cells] + [("old", int(n)) for n in args.old_cells]
    for kind, n in sizes:
        ens = new if kind == "new" else kind_of(base.members, base.encoder, base.meta, device=args.device,
                                                kernel="loop", chunk=n)
        r = measure(ens, n, args.repeat if kind == "new" or n <= 10**4 else 1, clocks, gemm, rng)
        r["kind"] = kind
        rows.append(r)
        peak_w, peak_c = gemm_flops / r["sgemm"][0] / 1e9, gemm_flops / r["sgemm"][1] / 1e9
        print(f"{kind} {n:8d}: first {r['first'][0]:.4f} s ({f_first * n / r['first'][1] / 1e9 / peak_c:.0%} of "
              f"sgemm, CPU time), later {r['later'][0]:.4f} s ({f_later * n / r['later'][1] / 1e9 / peak_c:.0%}); "
              f"sgemm {peak_w:.1f} / {peak_c:.1f} GFLOP/s (wall / CPU)", flush=True)
    load = os.getloadavg()
    lines = [f"Command: `OMP_NUM_THREADS=1 python bench/model_step.py --cells {' '.join(f'{c:g}' for c in args.cells)}"
             f" --old-cells {' '.join(f'{c:g}' for c in args.old_cells)} --repeat {args.repeat}`", "",
             f"Machine: {platform.machine()}, {os.cpu_count()} cores; {head}; load average at the end "
             f"{load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} (1/5/15 min).", "",
             "Seconds per evaluation (best of the repeats); % = matrix work / time / sgemm rate of the same run, in "
             "wall time and in CPU time of the thread (the two agree on an idle machine).", "",
             "| kernels | cells | first call [s] | later call [s] | cells/s (later) | first / sgemm (wall, CPU) | "
             "later / sgemm (wall, CPU) | sgemm GFLOP/s (wall, CPU) | state bytes / cell |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        n = r["n"]
        pw, pc = gemm_flops / r["sgemm"][0] / 1e9, gemm_flops / r["sgemm"][1] / 1e9
        ratio = {k: (f * n / r[k][0] / 1e9 / pw, f * n / r[k][1] / 1e9 / pc) for k, f in (("first", f_first),
                                                                                     ("later", f_later))}
        lines.append(f"| {r['kind']} | {n:.0e} | {r['first'][0]:.4f} | {r['later'][0]:.4f} | "
                     f"{n / r['later'][0]:.3g} | {ratio['first'][0]:.0%}, {ratio['first'][1]:.0%} | "
                     f"{ratio['later'][0]:.0%}, {ratio['later'][1]:.0%} | {pw:.1f}, {pc:.1f} | "
                     f"{r['state_bytes_per_cell']:.0f} |")
    lines += ["", f"Workspace of the new kernels (independent of the number of cells): "
              f"{max(r['workspace_mb'] for r in rows if r['kind'] == 'new'):.1f} MB."]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
