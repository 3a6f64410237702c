"""Train a TAM-RL (or plain-LSTM) ensemble from a YAML config and write a self-describing checkpoint."""

from __future__ import annotations

import argparse

from tamrl_coupler.commands import add_output_argument, add_progress_arguments, progress_mode, say

HELP = "train an ensemble from a YAML config (configs/train/fluxval.yaml) and write a checkpoint"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", help="YAML file with a TrainConfig (see configs/train/fluxval.yaml)")
    add_output_argument(parser, "checkpoint path (default: the config's 'out')")
    parser.add_argument("--data", help="data path (default: the config's 'data')")
    parser.add_argument("--members", type=int, help="number of ensemble members (default: the config's)")
    add_progress_arguments(parser)


def run(args: argparse.Namespace) -> int:
    import json
    import time

    from tamrl_coupler.data.reader import read_dataset, resolve_data_path
    from tamrl_coupler.model import save_checkpoint
    from tamrl_coupler.settings import ConfigError, load_yaml
    from tamrl_coupler.settings.train import TrainConfig
    from tamrl_coupler.training.daily import train_daily_ensemble
    from tamrl_coupler.training.loop import train_ensemble

    cfg = load_yaml(TrainConfig, args.config)
    if args.output:
        cfg.out = args.output
    if args.data:
        cfg.data = args.data
    if args.members:
        cfg.members = args.members
    if progress_mode(args) == "none":
        cfg.progress = False
    if not cfg.data:
        raise ConfigError(f"{args.config}: data: required key is missing (expected a data path)")
    t0 = time.perf_counter()
    daily = cfg.model.kind == "tamrl_daily"
    data = read_dataset(cfg.data, period="daily" if daily else "monthly")
    title = data.attrs.get("title", "")
    trained_on = f"{resolve_data_path(cfg.data).name} ({data.n_sites} sites{', ' + title if title else ''})"
    ensemble, history = (train_daily_ensemble if daily else train_ensemble)(cfg, data, trained_on=trained_on)
    path = save_checkpoint(ensemble, cfg.out)
    summary = {
        "checkpoint": str(path), "bytes": path.stat().st_size, "members": cfg.members,
        "best_epochs": [h.best_epoch for h in history],
        "best_val_loss": [round(h.best_val_loss, 4) for h in history],
        "seconds": round(time.perf_counter() - t0, 1),
    }
    say("%s", json.dumps(summary, indent=1))
    return 0
