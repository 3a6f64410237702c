"""One module per CLI subcommand (see :mod:`tamrl_coupler.cli`), and the options they share.

Every command speaks through :mod:`logging`: :func:`say` for what the command reports (``wrote ...``), the
library's own loggers for what happens on the way; ``--quiet`` keeps warnings and errors only (and no progress),
``--verbose`` adds the debug messages (:func:`add_common_arguments`, configured by the command line's ``main``).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

CLI_LOGGER = "tamrl_coupler.cli"  # what a command reports; printed plainly on standard output


def say(message: str, *args: Any) -> None:
    """Report ``message`` (%-style ``args``) as the command's own output: shown unless ``--quiet``."""
    logging.getLogger(CLI_LOGGER).info(message, *args)


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    """``--quiet`` / ``-q`` and ``--verbose`` / ``-v``: on every command (added by the command line itself)."""
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--quiet", "-q", action="store_true",
                       help="warnings and errors only, no progress (the command's result tables stay)")
    group.add_argument("--verbose", "-v", action="store_true", help="also the debug messages of every part")


def log_level(args: argparse.Namespace) -> int:
    return logging.WARNING if getattr(args, "quiet", False) else (
        logging.DEBUG if getattr(args, "verbose", False) else logging.INFO)


def add_output_argument(parser: argparse.ArgumentParser, help: str, required: bool = False, directory: bool = False,
                        **kwargs: Any) -> None:
    """``--output`` / ``-o``, the one spelling of every command's output; ``--out``, the old one, still works.

    ``directory``: the output is a directory the command creates (its parent must exist); otherwise a file whose
    directory must exist. ``--parents`` allows creating missing directories above it (:func:`check_output`)."""
    group = parser.add_mutually_exclusive_group(required=required)
    group.add_argument("--output", "-o", dest="output", help=help, **kwargs)
    group.add_argument("--out", dest="output", help=argparse.SUPPRESS, default=argparse.SUPPRESS)
    add_parents_argument(parser)
    parser.set_defaults(_output_directory=directory)


def add_parents_argument(parser: argparse.ArgumentParser) -> None:
    """``--parents`` / ``-p`` (once per command): create missing directories above the outputs, as ``mkdir -p``."""
    if not any("--parents" in a.option_strings for a in parser._actions):
        parser.add_argument("--parents", "-p", action="store_true",
                            help="create missing directories above the output (default: they must exist)")


def check_output(path: str | Path | None, option: str, args: argparse.Namespace, directory: bool = False) -> None:
    """Before any work: the directory that will hold ``path`` must exist, or be created because ``--parents`` was
    given; a missing one is an error naming the option (a typo never makes a tree of folders, at / or elsewhere).

    ``directory``: ``path`` is itself a directory the command creates (reported as new)."""
    from tamrl_coupler.communicator import launched_rank
    from tamrl_coupler.errors import OutputError

    if path is None:
        return
    tell = say if launched_rank() == 0 else (lambda *_: None)  # under mpiexec every rank checks, rank 0 says
    path = Path(path).expanduser()
    parent = path.parent
    if not parent.exists():
        if not getattr(args, "parents", False):
            raise OutputError(f"{option} {path}: directory {parent} does not exist (create it, or pass --parents "
                              "to have it created)")
        try:
            parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(f"{option} {path}: cannot create directory {parent} ({exc.strerror or exc})") from None
        tell("created directory %s", parent)
    elif not parent.is_dir():
        raise OutputError(f"{option} {path}: {parent} is a file, not a directory")
    if directory and not path.exists():
        tell("writing into a new directory %s", path)


def check_outputs(args: argparse.Namespace) -> None:
    """:func:`check_output` for ``--output`` when the command has one."""
    if "_output_directory" in args:
        check_output(getattr(args, "output", None), "--output", args, directory=args._output_directory)


def shipped_run_configs() -> list[str]:
    """The names of the run configs shipped in the package (tamrl_coupler/configs/run/NAME.yaml)."""
    from tamrl_coupler.settings.paths import package_root

    return sorted(p.stem for p in (package_root() / "configs" / "run").glob("*.yaml"))


def run_config_path(value: str) -> str:
    """A run config argument: a YAML file, or the bare name of a config shipped in the package (``demo``,
    ``prior_demo``, ``sites``), so that an installed package runs them without the repository. A name that is
    neither is left as it is (the config loader then names the missing file)."""
    if Path(value).exists() or "/" in value or value.endswith((".yaml", ".yml")):
        return value
    if value in shipped_run_configs():
        return f"package://configs/run/{value}.yaml"
    return value


def add_dataset_arguments(parser: argparse.ArgumentParser) -> None:
    """--checkpoint (a shipped one by name, or a file) and --sites: how predict and evaluate pick model and towers."""
    parser.add_argument("--checkpoint", metavar="daily|monthly|PATH",
                        help="daily or monthly (the checkpoints shipped in the package) or an .npz file; default: the "
                             "shipped one whose period matches the data (daily for daily tower files)")
    parser.add_argument("--sites", metavar="SITES.csv",
                        help="site table of daily tower files (SITE_ID, lat, lon, elevation, IGBP[, licence, "
                             "citation]); default: sites.csv beside them")


def dataset_inputs(args: argparse.Namespace) -> list[Any]:
    """The files predict and evaluate read (the data, a folder of it, the site table beside it or given), which no
    output may replace."""
    from tamrl_coupler.data.reader import resolve_data_path

    data = resolve_data_path(args.data)
    beside = [data.parent / "sites.csv"] if data.is_file() else []
    return [data, *beside, args.sites]


def add_unverified_argument(parser: argparse.ArgumentParser) -> None:
    """``--allow-unverified``: also use a restart or checkpoint of an older format that carries no whole-file
    seal (the product refuses those by default: nothing shows that their bytes are as written)."""
    parser.add_argument("--allow-unverified", action="store_true",
                        help="use a restart or checkpoint of an older format without a whole-file SHA-256 seal "
                             "(refused by default); only for files you trust")


def add_progress_arguments(parser: argparse.ArgumentParser) -> None:
    """``--progress`` of every long command (run, prior, demo, predict, evaluate, train, cv); ``--quiet`` means
    ``--progress none``, and ``--no-progress``, the old spelling of train and cv, still works."""
    parser.add_argument("--progress", choices=("auto", "bar", "lines", "none"), default="auto",
                        help="auto: a bar on a terminal, a line every ~10%% of the steps otherwise (logs, CI); bar "
                             "or lines: always that; none: nothing")
    parser.add_argument("--no-progress", dest="progress", action="store_const", const="none", help=argparse.SUPPRESS)


def progress_mode(args: argparse.Namespace) -> str:
    return "none" if getattr(args, "quiet", False) else args.progress


def dataset_progress(ens: Any, data: Any, args: argparse.Namespace) -> Any:
    """The progress reporter of stepping ``ens`` over ``data`` (predict, evaluate): per site for a daily model
    (each site's record is evaluated whole), per period otherwise; None with ``--progress none``."""
    from tamrl_coupler.host.progress import make_progress

    daily = ens.meta.period == "daily"
    return make_progress(data.n_sites if daily else len(data.time), f"predict {data.n_sites} site(s)",
                         progress_mode(args), unit="site" if daily else "period")


def add_threads_argument(parser: argparse.ArgumentParser) -> None:
    """``--threads`` of the commands that run the ensemble in one process (predict, evaluate)."""
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads of this process (1: one per process, as in the coupled runs)")


def set_threads(args: argparse.Namespace) -> None:
    """torch's thread count from ``--threads`` (a non-positive count is an input error naming the option)."""
    import torch

    from tamrl_coupler.errors import InputError

    if args.threads < 1:
        raise InputError(f"--threads {args.threads}: expected a positive number of threads")
    torch.set_num_threads(args.threads)


def add_budget_arguments(parser: argparse.ArgumentParser, config: bool = True) -> None:
    """``--budget`` and its target/prior options (predict, run, prior); ``config``: the run config's ``budget:``
    section is the default, which these override."""
    default = " (default: the run config's budget section)" if config else " (default: as_trained)"
    parser.add_argument("--budget", choices=("as_trained", "balanced", "target"),
                        help="NEE's carbon-budget mode: as_trained (what the towers taught), balanced (each cell's "
                             "NEE sums to zero over a year), target (a prescribed annual sink)" + default)
    parser.add_argument("--sink-pgc", type=float, metavar="PGC",
                        help="--budget target: the global annual sink, PgC/yr (uptake positive), shared in "
                             "proportion to each cell's GPP (default: the config's, or none)")
    parser.add_argument("--sink-fraction", type=float, metavar="F",
                        help="--budget target: each cell's annual sink as a fraction of its GPP (default: the "
                             "config's, or none)")
    parser.add_argument("--budget-prior", metavar="auto|none|FILE",
                        help="the monthly climatology standing in for months not yet seen (auto: the one shipped "
                             "beside the checkpoint; default: the config's, else auto)")


def budget_section(args: argparse.Namespace, section: Any = None) -> Any:
    """The ``budget:`` section ``section`` (or the default) with the command line's overrides, validated."""
    from dataclasses import replace

    from tamrl_coupler.settings.budget import BudgetSection

    section = section if section is not None else BudgetSection()
    if args.budget is not None:
        section = replace(section, mode=args.budget, sink_pgc=args.sink_pgc, sink_fraction=args.sink_fraction)
    elif args.sink_pgc is not None or args.sink_fraction is not None:
        section = replace(section, sink_pgc=args.sink_pgc, sink_fraction=args.sink_fraction)
    if args.budget_prior is not None:
        section = replace(section, prior=args.budget_prior)
    section.validate()
    return section
