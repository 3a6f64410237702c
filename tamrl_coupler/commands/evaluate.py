"""Score the ensemble against a dataset's observed fluxes: pooled RMSE, R2, bias, median per-site RMSE."""

from __future__ import annotations

import argparse

from tamrl_coupler.commands import (
    add_dataset_arguments,
    add_progress_arguments,
    add_threads_argument,
    progress_mode,
    set_threads,
)

HELP = "evaluate the ensemble on a dataset with observed fluxes; prints (and writes) the metrics table"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", required=True, help="FluxVal-layout .nc, FLUXNET2015/AmeriFlux .csv, or a directory")
    add_dataset_arguments(parser)
    parser.add_argument("--json", help="write the full metrics (also per IGBP class) to this JSON file, and the "
                                       "benchmark pictures beside it (JSON name + _scatter.png, _igbp_error.png, "
                                       "_seasonal_cycle.png; default: print only)")
    parser.add_argument("--min-site-obs", type=int, default=6, help="periods a site needs for its per-site RMSE")
    parser.add_argument("--lat", nargs="+", metavar="[SITE=]DEG",
                        help="site latitude(s), degrees north, for files that carry none (FLUXNET/AmeriFlux CSV), "
                             "needed by checkpoints that use latitude: one number for every site, or SITE=DEG pairs "
                             "(default: the file's)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto")
    add_threads_argument(parser)
    add_progress_arguments(parser)


def run(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from tamrl_coupler.atomicfile import write_text_atomic
    from tamrl_coupler.data.reader import data_period, read_dataset
    from tamrl_coupler.errors import InputError
    from tamrl_coupler.host.progress import make_progress
    from tamrl_coupler.model import load_checkpoint
    from tamrl_coupler.model.checkpoint import resolve_checkpoint
    from tamrl_coupler.model.inference import predict_dataset, set_site_lat, targets_in
    from tamrl_coupler.training.metrics import balance_violation, format_table, metrics_table

    set_threads(args)
    checkpoint = resolve_checkpoint(args.checkpoint, period=data_period(args.data))
    ens = load_checkpoint(checkpoint, device=args.device)
    data = read_dataset(args.data, period=ens.meta.period, sites=args.sites)
    set_site_lat(data, args.lat)
    if not any(data.targets.get(k) is not None for k in ("gpp", "nee")):
        raise InputError(f"{args.data}: no observed fluxes (gpp / nee) to evaluate against")
    conv = ens.meta.sign_convention
    bar = make_progress(len(data.time), f"predict {data.n_sites} site(s)", progress_mode(args))
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
        from tamrl_coupler.products.siteplots import site_plots

        out = Path(args.json)
        write_text_atomic(out, json.dumps(table, indent=1), "metrics")
        print(f"wrote {out}")
        for png in site_plots(out.parent, out.stem, data.sites, data.igbp, data.time, targets_in(data, conv), pred,
                              conv, f"TAM-RL on {Path(args.data).name}"):
            print(f"wrote {png}")
    return 0
