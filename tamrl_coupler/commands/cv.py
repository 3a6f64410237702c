"""Grouped, IGBP-stratified k-fold CV of TAM-RL and the baselines; writes results/<name>.md and .json."""

from __future__ import annotations

import argparse

from tamrl_coupler.commands import add_output_argument, add_progress_arguments, progress_mode, say

HELP = "grouped k-fold CV (by site, stratified by IGBP) of TAM-RL, XGBoost and LSTM; writes a results table"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", help="YAML CVConfig (see configs/cv/fluxval.yaml)")
    add_output_argument(parser, "output path without suffix (default: the config's 'output')")
    parser.add_argument("--workers", type=int, default=2, help="parallel worker processes")
    add_progress_arguments(parser)


def run(args: argparse.Namespace) -> int:
    import shlex
    import sys

    from tamrl_coupler.data.reader import read_dataset
    from tamrl_coupler.settings import ConfigError, load_yaml
    from tamrl_coupler.settings.cv import CVConfig
    from tamrl_coupler.training.cv import run_cv
    from tamrl_coupler.training.cv_report import write_results

    cfg = load_yaml(CVConfig, args.config)
    if not cfg.data:
        raise ConfigError(f"{args.config}: data: required key is missing")
    data = read_dataset(cfg.data, period=cfg.period)
    results = run_cv(cfg, data, progress=progress_mode(args) != "none", workers=args.workers)
    command = "tamrl-coupler " + " ".join(shlex.quote(a) for a in sys.argv[1:]) if sys.argv[1:2] == ["cv"] else \
        f"tamrl-coupler cv {args.config}"
    md, js = write_results(results, cfg, command, data, args.output or cfg.output)
    print(md.read_text())
    say("wrote %s and %s", md, js)
    return 0
