"""Predict GPP, Reco and NEE (= GPP - Reco by default) with the ensemble spread for every site of a dataset."""

from __future__ import annotations

import argparse

HELP = "predict gpp, reco, nee (+ ensemble spread) for a FluxVal-layout or FLUXNET dataset into NetCDF"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", required=True, help="FluxVal-layout .nc, FLUXNET2015/AmeriFlux .csv, or a directory")
    parser.add_argument("--out", required=True, help="output NetCDF file")
    parser.add_argument("--checkpoint", help="checkpoint (.npz); default: the ensemble shipped in the package")
    parser.add_argument("--convention", choices=["uptake_positive", "atmosphere_positive"],
                        help="NEE sign convention of the output (default: the checkpoint's, uptake_positive)")
    parser.add_argument("--lat", nargs="+", metavar="[SITE=]DEG",
                        help="site latitude(s), degrees north, for files that carry none (FLUXNET/AmeriFlux CSV), "
                             "needed by checkpoints that use latitude: one number for every site, or SITE=DEG pairs")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads of this process (default 1: one per process, as the coupled runs)")
    parser.add_argument("--progress", choices=["auto", "bar", "lines", "none"], default="auto",
                        help="progress over the periods: a bar on a terminal, a line every ~10 %% otherwise (auto)")


def run(args: argparse.Namespace) -> int:
    import torch

    from tamrl_coupler.data.reader import read_dataset
    from tamrl_coupler.driver.progress import make_progress
    from tamrl_coupler.errors import InputError
    from tamrl_coupler.model import default_checkpoint_path, load_checkpoint
    from tamrl_coupler.model.inference import predict_dataset, set_site_lat, write_predictions
    from tamrl_coupler.physics.carbon import SignConvention

    if args.threads < 1:
        raise InputError(f"--threads {args.threads}: expected a positive number of threads")
    torch.set_num_threads(args.threads)
    ens = load_checkpoint(args.checkpoint, device=args.device)
    data = read_dataset(args.data, period=ens.meta.period)
    set_site_lat(data, args.lat)
    conv = args.convention or ens.meta.sign_convention
    bar = make_progress(len(data.time), f"predict {data.n_sites} site(s)", args.progress)
    pred = predict_dataset(ens, data, conv, progress=bar)
    path = write_predictions(pred, data, ens, args.out, conv, str(args.checkpoint or default_checkpoint_path()))
    print(f"wrote {path}: {data.n_sites} site(s) x {len(data.time)} {ens.meta.period} periods, "
          f"{ens.n_members} members, NEE convention {SignConvention.parse(conv).value}")
    return 0
