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
