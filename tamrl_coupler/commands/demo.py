"""The main job: the coupled TAM-RL run on the demo forcing shipped in the package (configs/run/demo.yaml): a global
5-degree host grid, the model on r90x45, 3-hourly coupling for 35 days; ends by writing the flux file and a PNG map
of the mean NEE."""

from __future__ import annotations

import argparse

from tamrl_coupler.commands import add_output_argument, add_progress_arguments, progress_mode

MPI = True  # runs under mpiexec (one rank or many)
HELP = "run the shipped demo (global coupled run on the packaged forcing), writing fluxes and a NEE map"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_output_argument(parser, "output directory (the Fortran main job writes demo_out)", default="demo_python_out",
                        directory=True)
    parser.add_argument("--steps", type=int, default=None, help="only the first N coupling steps (default: all)")
    add_progress_arguments(parser)


def demo_config_path():
    from pathlib import Path

    import tamrl_coupler

    return Path(tamrl_coupler.__file__).resolve().parent / "configs" / "run" / "demo.yaml"


def run(args: argparse.Namespace) -> int:
    from tamrl_coupler.commands.run import report
    from tamrl_coupler.communicator import world
    from tamrl_coupler.host.offline import run_offline

    comm = world()
    result = run_offline(demo_config_path(), args.output, steps=args.steps, comm=comm,
                         progress=progress_mode(args))
    return report(result, comm)
