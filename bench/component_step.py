"""Time per coupling step of the CouplingComponent, split into regrid, model, communication and the rest, for
10^3 .. 10^6 model cells on 1 and 2 MPI ranks, against the bare kernels measured in the same run (the model
evaluation alone, the sparse products alone, the Alltoallv exchanges alone) and the machine's sgemm rate.

    python bench/component_step.py --sizes 1e3,1e4,1e5,1e6 --ranks 1 --steps 8 --out /tmp/c1.md
    python bench/component_step.py --sizes 1e5 --ranks 1,2 --steps 8 --out /tmp/c2.md
    python bench/component_step.py --sizes 1e4,1e5 --ranks 1 --kernel loop --out /tmp/c_old.md   # old kernels

``--kernel batched`` (default) runs the member-batched kernels, ``loop`` the member loop (the product before them).
Each rank also measures the float32 sgemm rate (2048^3 ``torch.mm``) right after its timed steps, and the CPU time
of its evaluating step; "eval / sgemm" is the step's matrix work (0.467 MFLOP per cell for the shipped ensemble)
over that time and that rate. Peak memory is each rank's maximum resident set.

Setup: global regular host grid (all land, so every model cell is active) about 1.25x finer than the model grid
(CDO-style rNxM names), shipped checkpoint, 3-hourly steps in January 2015 from analytic smooth forcing,
``model.update_interval`` (default one day). Each size runs ``mpiexec -n R`` workers from 2015-01-02 00:00 (past
the period's first day, which evaluates every step); the first step (warm-up, which evaluates the ensemble) is not
timed; with 8 timed steps and a one-day interval the timed window is one full day: one step that evaluates the
ensemble and seven that reuse the period estimate. Weights are cached.
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


def grids_for(n_cells: float) -> tuple[str, str]:
    k = max(4, int(round((n_cells / 2) ** 0.5)))
    h = int(round(k * 1.25))
    return f"r{2 * k}x{k}", f"r{2 * h}x{h}"


def worker(size: float, steps: int, cache: str, interval: int, kernel: str) -> None:
    import resource

    import torch
    from mpi4py import MPI

    from tamrl_coupler.component import CouplingComponent, HostCells
    from tamrl_coupler.component.decomposition import contiguous_split
    from tamrl_coupler.regrid import Grid
    from tamrl_coupler.regrid.sparse_apply import spmm
    from tamrl_coupler.settings.run import load_run_config

    torch.set_num_threads(1)
    comm = MPI.COMM_WORLD
    rank, nranks = comm.Get_rank(), comm.Get_size()
    model_name, host_name = grids_for(size)
    host = Grid.from_name(host_name)
    c0, c1 = contiguous_split(host.size, nranks, rank)
    area = host.area[c0:c1] * 6371007.181 ** 2
    cells = HostCells(np.arange(c0, c1), host.lat[c0:c1], host.lon[c0:c1], area, np.ones(c1 - c0))
    cfg = load_run_config({"reference_date": "2015-01-01", "start": "2015-01-01", "end": "2015-02-01",
                           "coupling_step": 10800, "host": {"grid": host_name},
                           "model": {"grid": model_name, "block_size": 256, "update_interval": interval},
                           "regrid": {"cache_dir": cache}, "device": {"kind": "cpu", "threads": 1}})
    from tamrl_coupler.model import Ensemble, load_checkpoint

    base = load_checkpoint(device="cpu")
    ens = Ensemble(base.members, base.encoder, base.meta, kernel=kernel)
    t0 = time.perf_counter()
    comp = CouplingComponent(cfg, comm, cells, ensemble=ens)
    init_s = time.perf_counter() - t0
    lat, lon = cells.lat, cells.lon
    imports = {"tas": 285 + 15 * np.cos(np.deg2rad(lat)), "huss": 0.002 + 0.01 * np.cos(np.deg2rad(lat)),
               "ps": np.full(cells.size, 98000.0), "rsds": np.zeros(cells.size), "pr": np.full(cells.size, 2e-5)}
    for k, v in imports.items():
        comp.register_import(k, v)
    for k in comp.export_names:
        comp.register_export(k, np.zeros(cells.size))
    from tamrl_coupler.physics.solar import mean_toa_insolation

    cpu_times = []

    def step(i):
        t = 86400 + i * 10800  # from the period's second day: past the first interval, which evaluates every step
        imports["rsds"][:] = 0.7 * mean_toa_insolation(lat, lon, comp.clock.datetime(t), 10800, samples=2)
        comm.Barrier()
        s, c = time.perf_counter(), time.thread_time()
        comp.run_step(t, 10800)
        cpu_times.append(time.thread_time() - c)
        comm.Barrier()
        return time.perf_counter() - s

    step(0)  # warm-up
    for k in comp.timers:
        comp.timers[k] = 0.0
    n0 = comp.model_stage.n_evaluations
    cpu_times.clear()
    times, evaluated = [], []
    for i in range(1, steps + 1):
        before = comp.model_stage.n_evaluations
        times.append(step(i))
        evaluated.append(comp.model_stage.n_evaluations > before)
    a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
    c_mm = torch.empty(2048, 2048)
    sgemm_w, sgemm_c = [], []
    for _ in range(3):
        s, c = time.perf_counter(), time.thread_time()
        torch.mm(a, b, out=c_mm)
        sgemm_w.append(time.perf_counter() - s)
        sgemm_c.append(time.thread_time() - c)
    flops = 2.0 * 2048 ** 3
    eval_cpu = [t for t, e in zip(cpu_times, evaluated, strict=True) if e]
    n_eval = comp.model_stage.n_evaluations - n0
    total = sum(times)
    tm = {k: v / steps for k, v in comp.timers.items()}
    eval_steps = [t for t, e in zip(times, evaluated, strict=True) if e]
    reuse_steps = [t for t, e in zip(times, evaluated, strict=True) if not e]
    # bare kernels on the same data: exchanges alone, sparse products alone, the model forward alone
    reps = 3
    geo = comp.geometry
    X_state, X_flux = comp.imports.buf_state.copy(), comp.imports.buf_flux.copy()
    Y = comp.model_stage.step_rows.array.copy()
    comm.Barrier()
    s = time.perf_counter()
    for _ in range(reps):
        rs = geo.rg_state.exchange(X_state)
        rf = geo.rg_flux.exchange(X_flux)
        ro = geo.rg_out.exchange(Y)
    comm_s = (time.perf_counter() - s) / reps
    s = time.perf_counter()
    for _ in range(reps):
        spmm(geo.rg_state.local_matrix, np.ascontiguousarray(rs))
        spmm(geo.rg_flux.local_matrix, np.ascontiguousarray(rf))
        spmm(geo.rg_out.local_matrix, np.ascontiguousarray(ro))
    spmm_s = (time.perf_counter() - s) / reps
    s = time.perf_counter()
    comp.model_stage.runner.plan.run()  # the rank's evaluation alone (its blocks, no commit)
    model_bare_s = time.perf_counter() - s
    nan = float("nan")
    row = {"ranks": nranks, "model_cells": comp.geometry.n_model_total, "host_cells": host.size,
           "model_grid": model_name, "host_grid": host_name, "init_s": init_s, "step_s": total / steps,
           "interval": interval,
           "n_eval": n_eval, "n_steps": steps,
           "eval_step_s": sum(eval_steps) / len(eval_steps) if eval_steps else nan,
           "reuse_step_s": sum(reuse_steps) / len(reuse_steps) if reuse_steps else nan,
           "regrid_s": tm["regrid_in"] + tm["regrid_out"], "model_s": tm["model"],
           "model_per_eval_s": tm["model"] * steps / n_eval if n_eval else nan,
           "rest_s": tm["import"] + tm["drivers"] + tm["downscale"] + tm["export"],
           "comm_bare_s": comm_s, "spmm_bare_s": spmm_s, "model_bare_s": model_bare_s,
           "local_model_cells": comp.geometry.n_model, "kernel": kernel,
           "eval_cpu_s": sum(eval_cpu) / len(eval_cpu) if eval_cpu else nan,
           "step_cpu_s": sum(cpu_times) / len(cpu_times),
           "sgemm_gflops": flops / min(sgemm_w) / 1e9, "sgemm_cpu_gflops": flops / min(sgemm_c) / 1e9,
           "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0}
    rows = comm.gather(row, root=0)
    if rank == 0:
        worst = {k: max(r[k] for r in rows) for k in row if k.endswith("_s")}
        low = {k: min(r[k] for r in rows) for k in ("sgemm_gflops", "sgemm_cpu_gflops")}
        print("ROW " + json.dumps({**row, **worst, **low, "local_model_cells": max(r["local_model_cells"]
                                                                                   for r in rows),
                                   "peak_rss_mb": max(r["peak_rss_mb"] for r in rows)}))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="1e3,1e4,1e5")
    p.add_argument("--ranks", default="1,2")
    p.add_argument("--steps", type=int, default=8)
    p.add_argument("--interval", type=int, default=86400, help="model.update_interval [s]")
    p.add_argument("--kernel", default="batched", choices=["batched", "loop"],
                   help="the member-batched kernels or the member loop (the product before them)")
    p.add_argument("--out", default="component_step.md", help="the table (bench/results/component.md "
                   "quotes it with its reading)")
    p.add_argument("--cache", default="/tmp/tamrl-bench-weights")
    p.add_argument("--json", help="also write the rows as JSON")
    p.add_argument("--worker", type=float, default=None)
    args = p.parse_args()
    if args.worker is not None:
        worker(args.worker, args.steps, args.cache, args.interval, args.kernel)
        return
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    rows = []
    for size in [float(s) for s in args.sizes.split(",")]:
        for n in [int(r) for r in args.ranks.split(",")]:
            cmd = ["mpiexec", "-n", str(n), sys.executable, __file__, "--worker", str(size), "--steps",
                   str(args.steps), "--cache", args.cache, "--interval", str(args.interval), "--kernel", args.kernel]
            res = subprocess.run(cmd, capture_output=True, text=True, env=env)
            line = [ln for ln in res.stdout.splitlines() if ln.startswith("ROW ")]
            if res.returncode or not line:
                print(res.stdout[-2000:], res.stderr[-4000:], file=sys.stderr)
                raise SystemExit(f"worker failed: {' '.join(cmd)}")
            row = json.loads(line[0][4:])
            rows.append(row)
            print(f"{size:g} cells, {n} rank(s): {row['step_s'] * 1e3:.1f} ms/step, evaluating step "
                  f"{row['eval_step_s'] * 1e3:.1f} ms", flush=True)
    ms = 1e3
    load = os.getloadavg()
    lines = [f"Command: `python bench/component_step.py --sizes {args.sizes} --ranks {args.ranks} --steps "
             f"{args.steps} --interval {args.interval} --kernel {args.kernel}`", "",
             f"Machine: {platform.machine()}, {os.cpu_count()} cores, no GPU (CPU torch, 1 thread per rank); Python "
             f"{platform.python_version()}; load average at the end {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} "
             f"(1/5/15 min; the machine is shared, so treat times as upper bounds). Kernels: {args.kernel}.", "",
             "Milliseconds, slowest rank. evaluating / reusing step = the steps that run the ensemble / reuse the "
             "period estimate; mean step = all timed steps (with a one-day interval and 8 timed 3-hourly steps: one "
             "evaluation per 8 steps). regrid = host->model (bilinear + conservative) and model->host "
             "(conservative) applications with their Alltoallv exchanges, per step; model = the blocked ensemble "
             "per evaluation; rest = import copy + validation, driver accumulation, downscaling, unit conversion "
             "and NEE, per step; comm / spmm (bare) = the exchanges / the local sparse products alone; model (bare) "
             "= the rank's evaluation alone.", "",
             "| model cells | host cells | ranks | evaluating step | reusing step | mean step | regrid | model per "
             "eval | rest | comm (bare) | spmm (bare) | model (bare) | init [s] |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['model_cells']} ({r['model_grid']}) | {r['host_cells']} ({r['host_grid']}) | "
                     f"{r['ranks']} | {r['eval_step_s'] * ms:.1f} | {r['reuse_step_s'] * ms:.2f} | "
                     f"{r['step_s'] * ms:.1f} | {r['regrid_s'] * ms:.2f} | {r['model_per_eval_s'] * ms:.1f} | "
                     f"{r['rest_s'] * ms:.2f} | {r['comm_bare_s'] * ms:.2f} | {r['spmm_bare_s'] * ms:.2f} | "
                     f"{r['model_bare_s'] * ms:.1f} | {r['init_s']:.1f} |")
    lines += ["", "Against the machine, same runs: evaluating step per rank in wall and CPU time (slowest rank); "
              "eval / sgemm = 0.467 MFLOP x the rank's model cells / that time / the rank's sgemm rate; peak memory "
              "= largest resident set of a rank.", "",
              "| model cells | ranks | evaluating step [s] (wall, CPU) | mean step [s] (wall, CPU) | eval / sgemm "
              "(wall, CPU) | sgemm GFLOP/s (wall, CPU) | peak memory [MB] |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        work = 0.467e6 * r["local_model_cells"] / 1e9
        lines.append(f"| {r['model_cells']} | {r['ranks']} | {r['eval_step_s']:.3f}, {r['eval_cpu_s']:.3f} | "
                     f"{r['step_s']:.4f}, {r.get('step_cpu_s', float('nan')):.4f} | "
                     f"{work / r['eval_step_s'] / r['sgemm_gflops']:.0%}, "
                     f"{work / r['eval_cpu_s'] / r['sgemm_cpu_gflops']:.0%} | {r['sgemm_gflops']:.1f}, "
                     f"{r['sgemm_cpu_gflops']:.1f} | {r['peak_rss_mb']:.0f} |")
    one = sorted((r for r in rows if r["ranks"] == 1), key=lambda r: r["model_cells"])
    if len(one) >= 2:
        x = np.log10([r["model_cells"] for r in one])
        fits = {k: np.polyfit(x, np.log10([r[k] for r in one]), 1)[0]
                for k in ("step_s", "eval_step_s", "step_cpu_s", "eval_cpu_s") if all(k in r for r in one)}
        big, small = one[-1], one[-2]
        per_cell = (big["peak_rss_mb"] - small["peak_rss_mb"]) * 2**20 / (big["model_cells"] - small["model_cells"])
        cpu = (f" (CPU time: {fits['step_cpu_s']:.2f}, {fits['eval_cpu_s']:.2f})" if "step_cpu_s" in fits else "")
        lines += ["", f"1 rank, {one[0]['model_cells']} .. {one[-1]['model_cells']} model cells: log-log slope of the "
                  f"mean step {fits['step_s']:.2f}, of the evaluating step {fits['eval_step_s']:.2f}{cpu}; memory "
                  f"{per_cell:.0f} bytes per model cell (peak memory growth from {small['model_cells']} to "
                  f"{big['model_cells']} cells, with {big['host_cells'] / big['model_cells']:.2f} host cells per "
                  "model cell)."]
    for size in sorted({r["model_cells"] for r in rows}):
        by = {r["ranks"]: r for r in rows if r["model_cells"] == size}
        if 1 in by and 2 in by:
            lines.append(f"{size} model cells: 2 ranks / 1 rank speed-up "
                         f"{by[1]['eval_step_s'] / by[2]['eval_step_s']:.2f}x (evaluating step), "
                         f"{by[1]['step_s'] / by[2]['step_s']:.2f}x (mean step).")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
