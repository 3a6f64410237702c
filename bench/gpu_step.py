"""The model path on a GPU, as the coupling component runs it: cells per second, the transfer share and the
sgemm fraction of one evaluation (``bench/gpu.sh`` runs it and writes bench/results/gpu.md).

    PYTHONPATH=$PWD python bench/gpu_step.py --cells 260000 --out bench/results/gpu.md

The component's own ModelRunner on one device: the period drivers (float64, host) are converted into a pinned
float32 buffer, sent in one host->device copy, evaluated on fixed blocks (``--block-size``, default the GPU's
65536 cells), and the period estimate comes back in one device->host copy into pinned memory. Measured: the first
call of a period (task encoder + step) and a later call (step only), eager and with CUDA graphs; each transfer
alone; the float32 GEMM rate of the device (an 8192^3 ``torch.mm``, TF32 off, as in the kernels). 0.25 degree
global land is about 2.6e5 cells. ``--device cpu`` runs the same script on a CPU (a smoke test).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from tamrl_coupler.component.decomposition import BlockDecomposition
from tamrl_coupler.component.model_runner import ModelRunner
from tamrl_coupler.model import Ensemble, load_checkpoint
from tamrl_coupler.model.core import CHUNK_CPU, CHUNK_CUDA


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, device: torch.device, repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        sync(device)
        t = time.perf_counter()
        fn()
        sync(device)
        out.append(time.perf_counter() - t)
    return out


def flops_per_cell(ens: Ensemble, first: bool) -> float:
    total = 0
    for member in ens.members:
        for name, p in member.named_parameters():
            if p.dim() == 2 and (first or not name.startswith("enc_")):
                total += 2 * p.numel() * (ens.meta.window if name.startswith("enc_") and
                                          not name.startswith("enc_out") else 1)
    return float(total)


def sgemm_rate(device: torch.device, size: int) -> float:
    a, b = torch.randn(size, size, device=device), torch.randn(size, size, device=device)
    c = torch.empty(size, size, device=device)
    torch.mm(a, b, out=c)
    reps = 10 if device.type == "cuda" else 1
    best = min(timed(lambda: [torch.mm(a, b, out=c) for _ in range(reps)], device, 3)) / reps
    return 2.0 * size ** 3 / best / 1e9


def run_case(base: Ensemble, n: int, block: int, graphs: bool, repeat: int, kernel: str, rng) -> dict:
    dev = base.device
    ens = Ensemble(base.members, base.encoder, base.meta, device=dev, kernel=kernel, chunk=block)
    lat = rng.uniform(-60, 80, n)
    state = ens.init_state(n, first_period=np.datetime64("2015-01"), lat=lat)
    x = np.stack([rng.normal(5, 8, n), rng.normal(15, 8, n), rng.uniform(0, 30, n), rng.gamma(2, 4, n),
                  rng.gamma(1, 2, n)], axis=1)
    x = np.ascontiguousarray(np.concatenate([x, np.full((n, ens.n_drivers - 5), np.nan)], axis=1))
    state.window[:] = torch.as_tensor(x, dtype=torch.float32, device=dev)[:, None, :]
    blocks = BlockDecomposition(n, block, 1).local_blocks(0)
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    runner = ModelRunner(ens, state, blocks, cuda_graphs=graphs)

    def first():
        state.z_ready.fill_(False)
        runner.run(x, commit=False)

    for _ in range(2):  # warm-up: buffers, cuBLAS, graph captures of both programs
        first()
        runner.run(x, commit=False)
    t_first = timed(first, dev, max(3, repeat // 4))
    t_later = timed(lambda: runner.run(x, commit=False), dev, repeat)
    h2d = timed(lambda: runner.x_dev.copy_(runner.x_host, non_blocking=True), dev, repeat)
    d2h = timed(lambda: runner.estimate_host.copy_(runner.estimate_dev, non_blocking=True), dev, repeat)
    host = timed(lambda: runner.x_host.copy_(torch.from_numpy(x)), dev, repeat)
    finite = bool(np.isfinite(runner.estimate).all())
    return {"cells": n, "block": block, "graphs": graphs, "kernel": kernel, "first": statistics.median(t_first),
            "later": statistics.median(t_later), "later_min": min(t_later), "h2d": statistics.median(h2d),
            "d2h": statistics.median(d2h), "host": statistics.median(host), "finite": finite,
            "peak_mb": torch.cuda.max_memory_allocated(dev) / 2**20 if dev.type == "cuda" else float("nan")}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cells", type=int, default=260000)
    p.add_argument("--block-size", type=int, nargs="+", default=None,
                   help="cells per block (default: the device's, 65536 on a GPU)")
    p.add_argument("--repeat", type=int, default=20)
    p.add_argument("--device", default="cuda")
    p.add_argument("--no-old", action="store_true", help="skip the member loop (the kernels before batching)")
    p.add_argument("--out", default=None)
    args = p.parse_args()
    torch.backends.cuda.matmul.allow_tf32 = False  # float32 GEMMs, as the product's numerics assume
    torch.backends.cudnn.allow_tf32 = False
    torch.set_num_threads(1)
    dev = torch.device(args.device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("gpu_step.py: no CUDA device visible (torch.cuda.is_available() is False)")
    base = load_checkpoint(device=dev)
    blocks = args.block_size or [CHUNK_CUDA if dev.type == "cuda" else CHUNK_CPU]
    rng = np.random.default_rng(0)
    peak = sgemm_rate(dev, 8192 if dev.type == "cuda" else 1024)
    f_first, f_later = flops_per_cell(base, True), flops_per_cell(base, False)
    cases = [(b, g, "batched") for b in blocks for g in ((False, True) if dev.type == "cuda" else (False,))]
    if not args.no_old:
        cases.append((blocks[0], False, "loop"))
    rows = []
    for block, graphs, kernel in cases:
        r = run_case(base, args.cells, block, graphs, args.repeat, kernel, rng)
        rows.append(r)
        print(f"{kernel} block {block} graphs {graphs}: later {r['later'] * 1e3:.2f} ms, first {r['first'] * 1e3:.2f} "
              f"ms, transfers {(r['h2d'] + r['d2h']) * 1e3:.3f} ms", flush=True)
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else platform.processor() or platform.machine()
    lines = [f"Command: `bash bench/gpu.sh` (= `python bench/gpu_step.py --cells {args.cells} --repeat {args.repeat}"
             f"{' --device ' + args.device if args.device != 'cuda' else ''}`)", "",
             f"Device: {name}; torch {torch.__version__}; float32 (TF32 off); shipped checkpoint, {base.n_members} "
             f"members; {args.cells} cells (0.25 degree global land ~ 2.6e5). sgemm in this run: {peak:.0f} GFLOP/s "
             f"(8192^3 torch.mm). Matrix work per cell: later call {f_later / 1e6:.3f} MFLOP, first call "
             f"{f_first / 1e6:.2f} MFLOP. Host load average {os.getloadavg()[0]:.1f}.", "",
             "Median of the repeats. One evaluation = host float64 -> pinned float32 (host), one host->device copy, "
             "the blocks, one device->host copy of the estimate (5 x cells float64) and a stream synchronise. "
             "Transfer share = (host->device + device->host) / later call.", "",
             "| kernels | block | CUDA graphs | later call [ms] | first call [ms] | cells/s (later) | later / sgemm | "
             "first / sgemm | H2D [ms] | D2H [ms] | host conversion [ms] | transfer share | peak device memory [MB] "
             "| finite |", "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        n = r["cells"]
        lines.append(f"| {r['kernel']} | {r['block']} | {'yes' if r['graphs'] else 'no'} | {r['later'] * 1e3:.2f} | "
                     f"{r['first'] * 1e3:.2f} | {n / r['later']:.3g} | {f_later * n / r['later'] / 1e9 / peak:.0%} | "
                     f"{f_first * n / r['first'] / 1e9 / peak:.0%} | {r['h2d'] * 1e3:.3f} | {r['d2h'] * 1e3:.3f} | "
                     f"{r['host'] * 1e3:.3f} | {(r['h2d'] + r['d2h']) / r['later']:.1%} | {r['peak_mb']:.0f} | "
                     f"{r['finite']} |")
    best = min((r for r in rows if r["kernel"] == "batched"), key=lambda r: r["later"])
    lines += ["", f"Aim: {args.cells} cells in <= 20 ms per evaluation; best later call {best['later'] * 1e3:.2f} ms "
              f"(block {best['block']}, graphs {'on' if best['graphs'] else 'off'}): "
              f"{'met' if best['later'] <= 0.020 else 'not met'}."]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
