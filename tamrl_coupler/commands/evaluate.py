"""Score the ensemble against a dataset's observed fluxes: pooled RMSE, R2, bias, median per-site RMSE."""

from __future__ import annotations

import argparse

from tamrl_coupler.commands import (
    add_dataset_arguments,
    add_parents_argument,
    add_progress_arguments,
    add_threads_argument,
    add_unverified_argument,
    dataset_inputs,
    set_threads,
)

HELP = ("evaluate the ensemble on a dataset with observed fluxes; prints (and writes) the metrics table, the "
        "checkpoint's training sites (in-sample) apart from the others")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", required=True, help="FluxVal-layout .nc, FLUXNET2015/AmeriFlux .csv, or a directory")
    add_dataset_arguments(parser)
    add_unverified_argument(parser)
    parser.add_argument("--json", help="write the full metrics (also per IGBP class) to this JSON file, and the "
                                       "benchmark pictures beside it (JSON name + _scatter.png, _igbp_error.png, "
                                       "_seasonal_cycle.png; default: print only)")
    add_parents_argument(parser)
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

    from tamrl_coupler.atomicfile import refuse_overwriting, write_text_atomic
    from tamrl_coupler.commands import check_output, dataset_progress, say
    from tamrl_coupler.data.reader import data_period, read_dataset
    from tamrl_coupler.errors import InputError
    from tamrl_coupler.model import load_checkpoint
    from tamrl_coupler.model.checkpoint import resolve_checkpoint
    from tamrl_coupler.model.inference import predict_dataset, set_site_lat, targets_in
    from tamrl_coupler.training.insample import in_sample_mask, sample_tables, training_sites
    from tamrl_coupler.training.metrics import balance_violation, metrics_table

    if args.min_site_obs < 1:
        raise InputError(f"--min-site-obs {args.min_site_obs}: expected a positive number of periods (a site's RMSE "
                         f"needs at least one observed period)")
    check_output(args.json, "--json", args)
    set_threads(args)
    checkpoint = resolve_checkpoint(args.checkpoint, period=data_period(args.data))
    refuse_overwriting([args.json], dataset_inputs(args) + [checkpoint])
    ens = load_checkpoint(checkpoint, device=args.device, allow_unverified=args.allow_unverified)
    data = read_dataset(args.data, period=ens.meta.period, sites=args.sites)
    set_site_lat(data, args.lat)
    if not any(data.targets.get(k) is not None for k in ("gpp", "nee")):
        raise InputError(f"{args.data}: no observed fluxes (gpp / nee) to evaluate against")
    conv = ens.meta.sign_convention
    bar = dataset_progress(ens, data, args)
    pred = predict_dataset(ens, data, conv, progress=bar)
    if bar is not None:
        bar.close()
    obs = targets_in(data, conv)
    table = metrics_table(pred, obs, data.igbp, args.min_site_obs)
    in_sample = in_sample_mask(data.sites, training_sites(ens.meta))
    table.update(sample_tables(pred, obs, data.igbp, data.sites, in_sample, args.min_site_obs))
    table["balance_violation"] = balance_violation(pred["gpp"], pred["reco"], pred["nee"], conv)
    table["sign_convention"] = conv.value
    table["data"] = str(args.data)
    table["trained_on"] = ens.meta.trained_on
    print(f"{args.data}: {data.n_sites} site(s), {ens.n_members}-member ensemble, {conv.formula}")
    print(format_sample_tables(table, in_sample, ens.meta.trained_on))
    bv = table["balance_violation"]
    print(f"balance violation: RMS {bv['rms']:.1e}, max {bv['max_abs']:.1e} gC m-2 d-1")
    if args.json:
        from tamrl_coupler.products.siteplots import site_plots

        out = Path(args.json)
        write_text_atomic(out, json.dumps(table, indent=1), "metrics")
        say("wrote %s", out)
        for png in site_plots(out.parent, out.stem, data.sites, data.igbp, data.time, obs, pred, conv,
                              f"TAM-RL on {Path(args.data).name}", in_sample=in_sample):
            say("wrote %s", png)
    return 0


def format_sample_tables(table: dict, in_sample, trained_on: str) -> str:
    """The out-of-sample table first (the honest skill), then the in-sample one, said as such; the pooled table
    alone, with a warning, when the checkpoint does not list its training sites."""
    from tamrl_coupler.training.metrics import format_table

    if in_sample is None:
        return (f"in-sample or not: unknown (the checkpoint does not list its training sites; trained on "
                f"{trained_on})\n{format_table(table)}")
    n_in, n_out = int(in_sample.sum()), int((~in_sample).sum())
    parts = []
    if n_out:
        parts.append(f"out-of-sample: {n_out} site(s) the checkpoint was not trained on\n"
                     f"{format_table(table['out_of_sample'])}")
    if n_in:
        parts.append(f"IN-SAMPLE: {n_in} site(s) of the checkpoint's training set (scores flatter the model; not a "
                     f"measure of skill): {', '.join(table['sites']['in_sample'][:8])}"
                     f"{', ...' if n_in > 8 else ''}\n{format_table(table['in_sample'])}")
    if n_in and n_out:
        parts.append(f"all {n_in + n_out} sites pooled\n{format_table(table)}")
    return "\n\n".join(parts)
