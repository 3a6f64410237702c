"""One module per CLI subcommand (see :mod:`tamrl_coupler.cli`), and the options they share."""

from __future__ import annotations

import argparse
from typing import Any


def add_output_argument(parser: argparse.ArgumentParser, help: str, required: bool = False, **kwargs: Any) -> None:
    """``--output`` / ``-o``, the one spelling of every command's output; ``--out``, the old one, still works."""
    group = parser.add_mutually_exclusive_group(required=required)
    group.add_argument("--output", "-o", dest="output", help=help, **kwargs)
    group.add_argument("--out", dest="output", help=argparse.SUPPRESS, default=argparse.SUPPRESS)


def add_dataset_arguments(parser: argparse.ArgumentParser) -> None:
    """--checkpoint (a shipped one by name, or a file) and --sites: how predict and evaluate pick model and towers."""
    parser.add_argument("--checkpoint", metavar="daily|monthly|PATH",
                        help="daily or monthly (the checkpoints shipped in the package) or an .npz file; default: the "
                             "shipped one whose period matches the data (daily for daily tower files)")
    parser.add_argument("--sites", metavar="SITES.csv",
                        help="site table of daily tower files (SITE_ID, lat, lon, elevation, IGBP[, licence, "
                             "citation]); default: sites.csv beside them")


def add_progress_arguments(parser: argparse.ArgumentParser) -> None:
    """``--quiet`` and ``--progress`` of the commands that run coupling steps (run, prior, demo) or step the
    ensemble over a dataset (predict, evaluate)."""
    parser.add_argument("--quiet", action="store_true", help="no progress output (same as --progress none)")
    parser.add_argument("--progress", choices=("auto", "bar", "lines", "none"), default="auto",
                        help="auto: a bar on a terminal, a line every ~10%% of the steps otherwise (logs, CI); bar "
                             "or lines: always that; none: nothing")


def progress_mode(args: argparse.Namespace) -> str:
    return "none" if args.quiet else args.progress


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
