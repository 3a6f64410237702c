"""Run the coupling component offline on CF forcing: `tamrl-coupler run CONFIG [--output DIR] [--steps N]
[--restart FILE]`, also under `mpiexec -n N`. Writes {prefix}_{first step}.nc (CF fluxes) and
{prefix}_restart_{next step}.nc into the output directory."""

from __future__ import annotations

import argparse

from tamrl_coupler.commands import add_output_argument, add_progress_arguments, progress_mode

MPI = True  # runs under mpiexec (one rank or many)
HELP = "run the coupled model offline on CF forcing (also under mpiexec), writing CF NetCDF fluxes"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", help="run config (YAML), e.g. configs/run/demo.yaml")
    add_output_argument(parser, "output directory", default="out")
    parser.add_argument("--steps", type=int, default=None, help="stop after N coupling steps and write a restart "
                        "(default: run to the config's end)")
    parser.add_argument("--restart", default=None, help="continue from this restart file "
                        "(default: start at the config's start)")
    add_progress_arguments(parser)


def configure_logging() -> None:
    import logging

    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")


def report(result, comm) -> None:
    if comm.Get_rank() != 0:
        return
    print(f"{result.n_steps} coupling steps on {comm.Get_size()} rank(s)")
    for label, path in (("fluxes", result.flux_file), ("restart", result.restart_file)):
        if path is not None:
            print(f"{label}: {path}")
    for path in result.extra_files:
        print(f"wrote: {path}")


def run(args: argparse.Namespace) -> int:
    if args.steps is not None and args.steps < 1:  # before MPI starts: every rank stops here alike
        raise ValueError(f"--steps: expected a positive number of coupling steps, got {args.steps}")
    from mpi4py import MPI

    from tamrl_coupler.host.offline import run_offline

    configure_logging()
    result = run_offline(args.config, args.output, steps=args.steps, restart=args.restart, comm=MPI.COMM_WORLD,
                         progress=progress_mode(args))
    report(result, MPI.COMM_WORLD)
    return 0
