"""What the ranks' agreement (tamrl_coupler/parallel.py) costs per coupling step, on 1, 2 and 3 MPI ranks.

    python bench/agreement.py --ranks 1,2,3 --out bench/results/agreement.md

Measured in one run, per rank count: the bare MPI floor (``comm.Allreduce`` of the same eight int64, and
``comm.Barrier``), the agreement itself (``Agreement.check`` with nobody failing, and the ``guard`` context
manager around an empty body, as ``run_step`` uses it with its registration signature), and, for scale, the
demo's coupling step (host 5x5 degrees, 2160 cells, model r90x45, 3-hourly) split into steps that evaluate the
ensemble and steps that reuse its estimate. The machine's own limits are measured in the same run (single-precision
matrix product rate, memory copy bandwidth), with the load average, so that the figures can be read on a shared
machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def _median_us(fn, n: int, comm) -> float:
    """Median over 5 batches of n calls, microseconds per call (ranks start each batch together)."""
    times = []
    for _ in range(5):
        comm.Barrier()
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        times.append((time.perf_counter() - t0) / n * 1e6)
    return float(np.median(times))


def machine_limits() -> dict[str, float]:
    """sgemm GFLOP/s (1024^2, one thread) and memory copy GB/s (64 MiB), measured now."""
    import torch

    torch.set_num_threads(1)
    a = torch.rand(1024, 1024)
    b = torch.rand(1024, 1024)
    a @ b
    t0 = time.perf_counter()
    for _ in range(5):
        a @ b
    gflops = 5 * 2 * 1024 ** 3 / (time.perf_counter() - t0) / 1e9
    src = np.ones(8 * 1024 * 1024)
    dst = np.empty_like(src)
    np.copyto(dst, src)
    t0 = time.perf_counter()
    for _ in range(10):
        np.copyto(dst, src)
    gbs = 10 * 2 * src.nbytes / (time.perf_counter() - t0) / 1e9
    return {"sgemm_gflops": gflops, "copy_gbs": gbs}


def demo_steps(comm, cache: str) -> dict[str, float]:
    """Median wall time of the demo's 3-hourly steps on day 2, which evaluates once (its last step): the others
    reuse the period estimate."""
    import yaml

    from tamrl_coupler.component import CouplingComponent, HostCells
    from tamrl_coupler.component.decomposition import contiguous_split
    from tamrl_coupler.io.forcing import ForcingReader
    from tamrl_coupler.io.hostgrid import read_host_grid
    from tamrl_coupler.settings.run import load_run_config

    demo = REPO / "tamrl_coupler" / "sample_data" / "demo_forcing.nc"
    cfg = yaml.safe_load((REPO / "configs" / "run" / "demo.yaml").read_text())
    cfg["regrid"]["cache_dir"] = cache
    cfg["device"]["kind"] = "cpu"
    cfg["model"]["checkpoint"] = "monthly"  # the daily model evaluates at every step of its period's first day
    cfg = load_run_config(cfg)
    cfg.base_dir = str(REPO / "configs" / "run")
    rank, size = comm.Get_rank(), comm.Get_size()
    host = read_host_grid(demo)
    c0, c1 = contiguous_split(host.size, size, rank)
    idx = np.arange(c0, c1)
    comp = CouplingComponent(cfg, comm, HostCells(idx, host.lat[c0:c1], host.lon[c0:c1], host.area[c0:c1],
                                                  host.landfrac[c0:c1]))
    reader = ForcingReader([demo], {}, ["tas", "huss", "ps", "rsds", "pr"], grid_size=host.size, dims=host.dims)
    bufs = {f: np.zeros(c1 - c0) for f in reader.fields}
    for f, b in bufs.items():
        comp.register_import(f, b)
    for f in comp.export_names:
        comp.register_export(f, np.zeros(c1 - c0))
    reuse, evaluate = [], []
    for k in range(16):
        rec = reader.record_for(comp.clock.datetime(k * 10800), 10800)
        for f, b in bufs.items():
            b[:] = reader.read(f, rec, idx)
        n_eval = comp.model_stage.n_evaluations
        comm.Barrier()
        t0 = time.perf_counter()
        comp.run_step(k * 10800, 10800)
        dt = comm.allreduce(time.perf_counter() - t0, op=__import__("mpi4py").MPI.MAX)
        if k >= 8:
            (evaluate if comp.model_stage.n_evaluations > n_eval else reuse).append(dt * 1e3)
    return {"reuse_step_ms": float(np.median(reuse)), "evaluate_step_ms": float(np.median(evaluate)),
            "n_reuse": len(reuse), "n_evaluate": len(evaluate)}


def worker(cache: str, n: int) -> None:
    from mpi4py import MPI

    from tamrl_coupler.parallel import Agreement

    comm = MPI.COMM_WORLD
    a = Agreement(comm)
    send, recv = np.zeros(8, np.int64), np.zeros(8, np.int64)  # what Agreement.check reduces
    signature = "imports ['huss', 'pr', 'ps', 'rsds', 'tas']"

    def guarded():
        with a.guard("run_step(time=0 s, dt=10800 s)", same=lambda: signature):
            pass

    row = {"ranks": comm.Get_size(),
           "allreduce_us": _median_us(lambda: comm.Allreduce(send, recv, op=MPI.MAX), n, comm),
           "barrier_us": _median_us(comm.Barrier, n, comm),
           "check_us": _median_us(lambda: a.check(None, "step"), n, comm),
           "guard_us": _median_us(guarded, n, comm)}
    row.update(demo_steps(comm, cache))
    limits = machine_limits()
    if comm.Get_rank() == 0:
        row.update(limits)
        print("ROW " + json.dumps(row), flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--ranks", default="1,2,3")
    p.add_argument("--calls", type=int, default=2000, help="calls per timed batch")
    p.add_argument("--cache", default="/tmp/tamrl_bench_weights")
    p.add_argument("--out", default=None)
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        worker(args.cache, args.calls)
        return
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    rows = []
    for r in (int(x) for x in args.ranks.split(",")):
        res = subprocess.run(["mpiexec", "-n", str(r), sys.executable, __file__, "--worker", "--cache", args.cache,
                              "--calls", str(args.calls)], capture_output=True, text=True, env=env, timeout=900)
        if res.returncode != 0:
            sys.exit(res.stdout + res.stderr)
        rows.append(json.loads(next(ln for ln in res.stdout.splitlines() if ln.startswith("ROW "))[4:]))
    load = os.getloadavg()
    lines = [
        f"Command: `python bench/agreement.py --ranks {args.ranks} --calls {args.calls}`",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}; load average at "
        f"the end {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} (1/5/15 min; shared machine: upper bounds).",
        "",
        "Microseconds per call (median of 5 batches, rank 0): the MPI floor (Allreduce of 8 int64, Barrier), the "
        "agreement with nobody failing (check, and the guard run_step uses, with its registration signature); "
        "milliseconds per demo step (slowest rank, day 2: steps that reuse the period estimate and the one that "
        "evaluates the ensemble); the agreement's share of a reusing step; the machine's sgemm rate and copy "
        "bandwidth measured in the same run.",
        "",
        "| ranks | Allreduce [us] | Barrier [us] | check [us] | guard [us] | demo reusing step [ms] | demo evaluating "
        "step [ms] | guard / reusing step | sgemm [GFLOP/s] | copy [GB/s] |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        share = r["guard_us"] / 1e3 / r["reuse_step_ms"]
        lines.append(f"| {r['ranks']} | {r['allreduce_us']:.1f} | {r['barrier_us']:.1f} | {r['check_us']:.1f} | "
                     f"{r['guard_us']:.1f} | {r['reuse_step_ms']:.2f} | {r['evaluate_step_ms']:.1f} | "
                     f"{share:.2%} | {r['sgemm_gflops']:.1f} | {r['copy_gbs']:.1f} |")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
