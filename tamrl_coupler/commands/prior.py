"""Inversion prior: run CONFIG (its `output.prior` section: target grid, frequency 3hourly|daily|monthly) and
write NEE and its uncertainty as {prefix}_{frequency}.nc in mol CO2 m-2 s-1, positive to the atmosphere. With
--from-fluxes, aggregate an existing flux file instead of running."""

from __future__ import annotations

import argparse

from tamrl_coupler.commands import add_budget_arguments, add_output_argument, add_progress_arguments, progress_mode

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
    add_budget_arguments(parser)


def config_checkpoint(cfg) -> dict[str, str]:
    """The identity of the run config's checkpoint, for a flux file that does not record the one it was made with
    (older files); the prior says where it came from."""
    from tamrl_coupler.model.checkpoint import resolve_checkpoint
    from tamrl_coupler.model.identity import checkpoint_identity

    return {**checkpoint_identity(resolve_checkpoint(cfg.model.checkpoint, cfg.base_dir)),
            "checkpoint_source": "the run config (the flux file does not record its checkpoint)"}


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from tamrl_coupler.atomicfile import refuse_overwriting
    from tamrl_coupler.commands import say
    from tamrl_coupler.commands.run import config_with_budget, report
    from tamrl_coupler.communicator import world
    from tamrl_coupler.host.offline import run_offline
    from tamrl_coupler.parallel import every_rank, on_root
    from tamrl_coupler.products.prior import write_prior_and_map
    from tamrl_coupler.settings.run import PriorSection

    comm = world()
    cfg = config_with_budget(args, comm)
    if cfg.output.prior is None:
        cfg.output.prior = PriorSection()
    if args.from_fluxes:
        if args.budget is not None:
            from tamrl_coupler.errors import InputError

            raise InputError("--budget applies to a run; a prior made --from-fluxes keeps the budget mode of its flux "
                             "file (its budget_mode attribute)")
        out = Path(args.output) / f"{cfg.output.prior.prefix}_{cfg.output.prior.frequency}.nc"
        with every_rank(comm, "tamrl-coupler prior: checking the output"):
            refuse_overwriting([out, out.with_name(out.stem + "_map.png")], [args.from_fluxes])
        paths = on_root(comm, f"writing the prior from {args.from_fluxes}",
                        lambda: write_prior_and_map(Path(args.from_fluxes), cfg.output.prior, Path(args.output), cfg,
                                                    provenance=config_checkpoint(cfg)))
        for path in paths or ():
            say("wrote: %s", path)
        if comm.Get_rank() == 0:
            from tamrl_coupler.products.prior import prior_totals_lines

            for line in prior_totals_lines(Path(args.from_fluxes)):  # a result table, printed
                print(line)
        return 0
    if cfg.budget.mode is None:  # a prior's default is the convention of inversion biosphere priors
        from dataclasses import replace

        cfg.budget = replace(cfg.budget, mode="balanced")
        if comm.Get_rank() == 0:
            say("budget mode balanced (the convention of inversion priors: each cell's NEE sums to zero over a year); "
                "the config sets none (budget.mode, or --budget)")
    cfg.output.map = False
    result = run_offline(cfg, args.output, steps=args.steps, comm=comm,
                         progress=progress_mode(args))
    return report(result, comm)
