"""Score the ensemble against a dataset's observed fluxes: pooled RMSE, R2, bias, median per-site RMSE."""

from __future__ import annotations

import argparse

HELP = "evaluate the ensemble on a dataset with observed fluxes; prints (and writes) the metrics table"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", required=True, help="FluxVal-layout .nc, FLUXNET2015/AmeriFlux .csv, or a directory")
    parser.add_argument("--checkpoint", help="checkpoint (.npz); default: the ensemble shipped in the package")
    parser.add_argument("--json", help="write the full metrics (also per IGBP class) to this JSON file")
    parser.add_argument("--min-site-obs", type=int, default=6, help="periods a site needs for its per-site RMSE")
    parser.add_argument("--lat", nargs="+", metavar="[SITE=]DEG",
                        help="site latitude(s), degrees north, for files that carry none (FLUXNET/AmeriFlux CSV), "
                             "needed by checkpoints that use latitude: one number for every site, or SITE=DEG pairs")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads of this process (default 1: one per process, as the coupled runs)")
    parser.add_argument("--progress", choices=["auto", "bar", "lines", "none"], default="auto",
                        help="progress over the periods: a bar on a terminal, a line every ~10 %% otherwise (auto)")


def run(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    import torch

    from tamrl_coupler.data.reader import read_dataset
    from tamrl_coupler.driver.progress import make_progress
    from tamrl_coupler.errors import InputError
    from tamrl_coupler.model import load_checkpoint
    from tamrl_coupler.model.inference import predict_dataset, set_site_lat, targets_in
    from tamrl_coupler.training.metrics import balance_violation, format_table, metrics_table

    if args.threads < 1:
        raise InputError(f"--threads {args.threads}: expected a positive number of threads")
    torch.set_num_threads(args.threads)
    ens = load_checkpoint(args.checkpoint, device=args.device)
    data = read_dataset(args.data, period=ens.meta.period)
    set_site_lat(data, args.lat)
    if not any(data.targets.get(k) is not None for k in ("gpp", "nee")):
        raise InputError(f"{args.data}: no observed fluxes (gpp / nee) to evaluate against")
    conv = ens.meta.sign_convention
    bar = make_progress(len(data.time), f"predict {data.n_sites} site(s)", args.progress)
    pred = predict_dataset(ens, data, conv, progress=bar)
    table = metrics_table(pred, targets_in(data, conv), data.igbp, args.min_site_obs)
    table["balance_violation"] = balance_violation(pred["gpp"], pred["reco"], pred["nee"], conv)
    table["sign_convention"] = conv.value
    table["data"] = str(args.data)
    print(f"{args.data}: {data.n_sites} site(s), {ens.n_members}-member ensemble, {conv.formula}")
    print(format_table(table))
    bv = table["balance_violation"]
    print(f"balance violation: RMS {bv['rms']:.1e}, max {bv['max_abs']:.1e} gC m-2 d-1")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(table, indent=1))
        print(f"wrote {args.json}")
    return 0
