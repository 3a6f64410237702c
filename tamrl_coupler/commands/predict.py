"""Predict GPP, Reco and NEE (= GPP - Reco by default) with the ensemble spread for every site of a dataset."""

from __future__ import annotations

import argparse

from tamrl_coupler.commands import (
    add_dataset_arguments,
    add_output_argument,
    add_progress_arguments,
    add_threads_argument,
    dataset_progress,
    say,
    set_threads,
)

HELP = "predict gpp, reco, nee (+ ensemble spread) for a FluxVal-layout or FLUXNET dataset into NetCDF"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", required=True, help="FluxVal-layout .nc, FLUXNET2015/AmeriFlux .csv, or a directory")
    add_output_argument(parser, "output NetCDF file", required=True)
    add_dataset_arguments(parser)
    parser.add_argument("--convention", choices=["uptake_positive", "atmosphere_positive"],
                        help="NEE sign convention of the output (default: the checkpoint's, uptake_positive)")
    parser.add_argument("--lat", nargs="+", metavar="[SITE=]DEG",
                        help="site latitude(s), degrees north, for files that carry none (FLUXNET/AmeriFlux CSV), "
                             "needed by checkpoints that use latitude: one number for every site, or SITE=DEG pairs "
                             "(default: the file's)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto")
    add_threads_argument(parser)
    add_progress_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from tamrl_coupler.data.reader import data_period, read_dataset
    from tamrl_coupler.io.predictions import write_predictions
    from tamrl_coupler.model import load_checkpoint
    from tamrl_coupler.model.checkpoint import resolve_checkpoint
    from tamrl_coupler.model.inference import predict_dataset, set_site_lat
    from tamrl_coupler.physics.carbon import SignConvention

    set_threads(args)
    checkpoint = resolve_checkpoint(args.checkpoint, period=data_period(args.data))
    ens = load_checkpoint(checkpoint, device=args.device)
    data = read_dataset(args.data, period=ens.meta.period, sites=args.sites)
    set_site_lat(data, args.lat)
    conv = args.convention or ens.meta.sign_convention
    bar = dataset_progress(ens, data, args)
    pred = predict_dataset(ens, data, conv, progress=bar)
    if bar is not None:
        bar.close()
    path = write_predictions(pred, data, ens, args.output, conv, args.checkpoint or checkpoint.name)
    say(f"wrote {path}: {data.n_sites} site(s) x {len(data.time)} {ens.meta.period} periods, "
        f"{ens.n_members} members, NEE convention {SignConvention.parse(conv).value}")
    return 0
