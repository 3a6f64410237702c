"""Run the coupling component offline on CF forcing: `tamrl-coupler run CONFIG [--output DIR] [--steps N]
[--restart FILE]`, also under `mpiexec -n N`. Writes {prefix}_{first step}.nc (CF fluxes) and
{prefix}_restart_{next step}.nc into the output directory. SIGTERM, SIGINT, SIGHUP or SIGUSR1 on any rank: every
rank finishes the step, the flux file and a restart are written, and the exit status is 75."""

from __future__ import annotations

import argparse

from tamrl_coupler.commands import (
    add_budget_arguments,
    add_output_argument,
    add_progress_arguments,
    add_unverified_argument,
    progress_mode,
    run_config_path,
    say,
)

MPI = True  # runs under mpiexec (one rank or many)
HELP = "run the coupled model offline on CF forcing (also under mpiexec), writing CF NetCDF fluxes"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", help="run config (YAML), e.g. configs/run/demo.yaml, or the name of one shipped "
                                       "in the package: demo, prior_demo, sites")
    add_output_argument(parser, "output directory", default="out", directory=True)
    parser.add_argument("--steps", type=int, default=None, help="stop after N coupling steps and write a restart "
                        "(default: run to the config's end)")
    parser.add_argument("--restart", default=None, help="continue from this restart file "
                        "(default: start at the config's start)")
    add_unverified_argument(parser)
    add_progress_arguments(parser)
    add_budget_arguments(parser)


def report(result, comm) -> int:
    """What a run wrote, said once (by rank 0); the exit status: 0, or EXIT_STOPPED (75) after a stop signal (said
    on stderr even with --quiet: the job did not end where its config says)."""
    import sys

    from tamrl_coupler.signals import EXIT_STOPPED

    if comm.Get_rank() == 0:
        say("%d coupling steps on %d rank(s)", result.n_steps, comm.Get_size())
        for label, path in (("fluxes", result.flux_file), ("restart", result.restart_file)):
            if path is not None:
                say("%s: %s", label, path)
        for path in result.extra_files:
            say("wrote: %s", path)
        for line in result.totals:  # global and band totals (physics/totals.py): a result table, printed
            print(line)
        if result.stopped:
            print(f"tamrl-coupler: stopped: {result.stopped}", file=sys.stderr, flush=True)
    return EXIT_STOPPED if result.stopped else 0


def config_with_budget(args: argparse.Namespace, comm):
    """The run config with ``--budget`` and its options over its ``budget:`` section (read on every rank, agreed)."""
    from tamrl_coupler.commands import budget_section
    from tamrl_coupler.parallel import every_rank
    from tamrl_coupler.settings.run import load_run_config

    with every_rank(comm, "reading the config"):
        cfg = load_run_config(run_config_path(args.config))
        cfg.budget = budget_section(args, cfg.budget)
    return cfg


def run(args: argparse.Namespace) -> int:
    if args.steps is not None and args.steps < 1:  # before MPI starts: every rank stops here alike
        raise ValueError(f"--steps: expected a positive number of coupling steps, got {args.steps}")
    from tamrl_coupler.communicator import world
    from tamrl_coupler.host.offline import run_offline

    comm = world()
    result = run_offline(config_with_budget(args, comm), args.output, steps=args.steps, restart=args.restart,
                         comm=comm, progress=progress_mode(args), allow_unverified=args.allow_unverified)
    return report(result, comm)
