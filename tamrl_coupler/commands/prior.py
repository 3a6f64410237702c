"""Inversion prior: run CONFIG (its `output.prior` section: target grid, frequency 3hourly|daily|monthly) and
write NEE and its uncertainty as {prefix}_{frequency}.nc in mol CO2 m-2 s-1, positive to the atmosphere. With
--from-fluxes, aggregate an existing flux file instead of running."""

from __future__ import annotations

import argparse

from tamrl_coupler.commands import add_output_argument, add_progress_arguments, progress_mode, run_config_path

MPI = True  # runs under mpiexec (one rank or many)
HELP = "write an inversion prior (NEE and uncertainty, mol CO2 m-2 s-1, positive up) on a target grid"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", help="run config (YAML) with an output.prior section, e.g. "
                                       "configs/run/prior_demo.yaml, or the name of one shipped in the package: "
                                       "prior_demo")
    add_output_argument(parser, "output directory", default="prior_out", directory=True)
    parser.add_argument("--steps", type=int, default=None, help="only the first N coupling steps (default: all)")
    parser.add_argument("--from-fluxes", default=None, help="an existing flux file of this config's run "
                        "(default: run the config first)")
    add_progress_arguments(parser)


def config_checkpoint(cfg) -> dict[str, str]:
    """The identity of the run config's checkpoint, for a flux file that does not record the one it was made with
    (older files); the prior says where it came from."""
    from tamrl_coupler.model.checkpoint import resolve_checkpoint
    from tamrl_coupler.model.identity import checkpoint_identity

    return {**checkpoint_identity(resolve_checkpoint(cfg.model.checkpoint, cfg.base_dir)),
            "checkpoint_source": "the run config (the flux file does not record its checkpoint)"}


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from tamrl_coupler.commands import say
    from tamrl_coupler.commands.run import report
    from tamrl_coupler.communicator import world
    from tamrl_coupler.host.offline import run_offline
    from tamrl_coupler.parallel import every_rank, on_root
    from tamrl_coupler.products.prior import write_prior_and_map
    from tamrl_coupler.settings.run import PriorSection, load_run_config

    comm = world()
    with every_rank(comm, "tamrl-coupler prior: reading the config"):
        cfg = load_run_config(run_config_path(args.config))
    if cfg.output.prior is None:
        cfg.output.prior = PriorSection()
    if args.from_fluxes:
        paths = on_root(comm, f"writing the prior from {args.from_fluxes}",
                        lambda: write_prior_and_map(Path(args.from_fluxes), cfg.output.prior, Path(args.output), cfg,
                                                    provenance=config_checkpoint(cfg)))
        for path in paths or ():
            say("wrote: %s", path)
        return 0
    cfg.output.map = False
    result = run_offline(cfg, args.output, steps=args.steps, comm=comm,
                         progress=progress_mode(args))
    report(result, comm)
    return 0
