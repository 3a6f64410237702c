"""Benchmark the MPI-distributed application (run under mpiexec; prints one JSON line on rank 0).

    OMP_NUM_THREADS=1 PYTHONPATH=$PWD mpiexec -n 2 .venv/bin/python bench/regrid_mpi.py [--fields 100]

GLDAS 0.25 deg grid -> r360x180 conservative (native weights, built on every rank); destination rows in blocks,
source cells in latitude bands (as a host model would own them). Reports plan set-up time and the time of one
application (exchange + local product), the slowest rank's.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np


def main() -> None:
    from mpi4py import MPI

    from tamrl_coupler.regrid import DistributedRegridder, Grid, Regridder

    p = argparse.ArgumentParser()
    p.add_argument("--fields", type=int, default=100)
    args = p.parse_args()
    comm = MPI.COMM_WORLD
    rank, size = comm.Get_rank(), comm.Get_size()
    src = Grid.regular(-59.875 + 0.25 * np.arange(600), -179.875 + 0.25 * np.arange(1440), name="gldas")
    rg = Regridder(src, "r360x180", "conservative", backend="native")
    src_idx = np.array_split(np.arange(src.size), size)[rank]   # latitude bands of the source
    dst_idx = np.array_split(np.arange(rg.dst.size), size)[rank]
    comm.Barrier()
    t0 = time.perf_counter()
    d = DistributedRegridder(rg, comm, src_idx, dst_idx)
    t_plan = comm.allreduce(time.perf_counter() - t0, op=MPI.MAX)
    x = np.random.default_rng(rank).random((args.fields, src_idx.size))
    out = np.empty((args.fields, dst_idx.size))
    times = []
    for _ in range(5):
        comm.Barrier()
        t0 = time.perf_counter()
        d(x, out=out)
        times.append(comm.allreduce(time.perf_counter() - t0, op=MPI.MAX))
    x1 = x[:1].copy()
    out1 = np.empty((1, dst_idx.size))
    times1 = []
    for _ in range(10):
        comm.Barrier()
        t0 = time.perf_counter()
        d(x1, out=out1)
        times1.append(comm.allreduce(time.perf_counter() - t0, op=MPI.MAX))
    recv = comm.allreduce(d.n_remote, op=MPI.SUM)
    if rank == 0:
        print(json.dumps({"ranks": size, "plan_s": t_plan, "apply_1_ms": min(times1) * 1e3,
                          "apply_k_ms": min(times) * 1e3, "fields": args.fields, "received_values": recv}))


if __name__ == "__main__":
    main()
