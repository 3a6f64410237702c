"""Predict GPP, Reco and NEE (= GPP - Reco by default) with their spreads (for the shipped checkpoints the calibrated
predictive standard deviation at an unseen site) for every site of a dataset."""

from __future__ import annotations

import argparse

from tamrl_coupler.commands import (
    add_budget_arguments,
    add_dataset_arguments,
    add_output_argument,
    add_progress_arguments,
    add_threads_argument,
    add_unverified_argument,
    dataset_inputs,
    dataset_progress,
    say,
    set_threads,
)

HELP = "predict gpp, reco, nee (+ calibrated spread) for a FluxVal-layout or FLUXNET dataset into NetCDF"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", required=True, help="FluxVal-layout .nc, FLUXNET2015/AmeriFlux .csv, or a directory")
    add_output_argument(parser, "output NetCDF file", required=True)
    add_dataset_arguments(parser)
    add_unverified_argument(parser)
    parser.add_argument("--convention", choices=["uptake_positive", "atmosphere_positive"],
                        help="NEE sign convention of the output (default: the checkpoint's, uptake_positive)")
    parser.add_argument("--lat", nargs="+", metavar="[SITE=]DEG",
                        help="site latitude(s), degrees north, for files that carry none (FLUXNET/AmeriFlux CSV), "
                             "needed by checkpoints that use latitude: one number for every site, or SITE=DEG pairs "
                             "(default: the file's)")
    parser.add_argument("--monthly", action="store_true",
                        help="daily data: write the calendar-month means of the daily model's fluxes (months with "
                             "every day predicted; monthly-only data keep the monthly checkpoint)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto")
    add_threads_argument(parser)
    add_progress_arguments(parser)
    add_budget_arguments(parser, config=False)


def run(args: argparse.Namespace) -> int:
    from tamrl_coupler.atomicfile import refuse_overwriting
    from tamrl_coupler.data.reader import data_period, read_dataset
    from tamrl_coupler.io.predictions import write_predictions
    from tamrl_coupler.model import load_checkpoint
    from tamrl_coupler.model.checkpoint import resolve_checkpoint
    from tamrl_coupler.model.inference import predict_dataset, set_site_lat
    from tamrl_coupler.physics.carbon import SignConvention

    set_threads(args)
    checkpoint = resolve_checkpoint(args.checkpoint, period=data_period(args.data))
    refuse_overwriting([args.output], dataset_inputs(args) + [checkpoint])
    ens = load_checkpoint(checkpoint, device=args.device, allow_unverified=args.allow_unverified)
    data = read_dataset(args.data, period=ens.meta.period, sites=args.sites)
    set_site_lat(data, args.lat)
    conv = args.convention or ens.meta.sign_convention
    bar = dataset_progress(ens, data, args)
    pred = predict_dataset(ens, data, conv, progress=bar)
    if bar is not None:
        bar.close()
    pred, attrs, lines = budget_and_totals(args, pred, data, ens, checkpoint, conv)
    how = {}
    if args.monthly:
        from tamrl_coupler.errors import InputError
        from tamrl_coupler.model.aggregate import SPREAD_NOTE, monthly_dataset, monthly_means

        if ens.meta.period != "daily":
            raise InputError(f"--monthly: {args.data} is {ens.meta.period} data, predicted by the monthly checkpoint "
                             "already (monthly means are made from a daily model's days)")
        pred, months = monthly_means(pred, data.time, conv)
        data = monthly_dataset(data, months)
        how = {"aggregation": "calendar-month means of the daily model's daily fluxes (months with every day "
                              "predicted); NEE = GPP - Reco recomputed from the monthly means",
               "spread_note": SPREAD_NOTE}
    path = write_predictions(pred, data, ens, args.output, conv, args.checkpoint or checkpoint.name, attrs, **how)
    say(f"wrote {path}: {data.n_sites} site(s) x {len(data.time)} {data.period} periods ({ens.meta.period} model), "
        f"{ens.n_members} members, NEE convention {SignConvention.parse(conv).value}, budget mode "
        f"{attrs['budget_mode']}")
    for line in lines:  # the global totals of a gridded file: a result table, printed
        print(line)
    return 0


def budget_and_totals(args: argparse.Namespace, pred: dict, data, ens, checkpoint, conv) -> tuple[dict, dict, list]:
    """``--budget`` applied (products/budgeted.py) and, for a gridded driver file (cell_area and landfrac per site,
    e.g. the global test bed's), the global and band totals: the predictions, the file's extra attributes and the
    lines to print."""
    import numpy as np

    from tamrl_coupler.commands import budget_section
    from tamrl_coupler.errors import InputError
    from tamrl_coupler.io.testbed import read_cell_weights
    from tamrl_coupler.model.checkpoint import ensemble_fingerprint
    from tamrl_coupler.physics.carbon import SignConvention
    from tamrl_coupler.physics.totals import format_table, totals_attributes, totals_of
    from tamrl_coupler.products.budgeted import budget_fields

    section = budget_section(args)
    spec = section.spec()
    cells = read_cell_weights(args.data)
    weight = None if cells is None else cells[0] * cells[1]
    if spec.needs_global_gpp and weight is None:
        raise InputError(f"--sink-pgc: {args.data} has no cell areas and land fractions (cell_area, landfrac per "
                         "site) to share a global sink over; use --sink-fraction")
    pred, attrs = budget_fields(pred, data.time, ens.meta.period, spec, data.lat, data.lon, section.prior,
                                checkpoint, ensemble_fingerprint(ens) if spec.adjusts else "", weight, conv)
    if weight is None:
        return pred, attrs, []
    unit = "D" if ens.meta.period == "daily" else "M"
    starts = np.asarray(data.time).astype(f"datetime64[{unit}]")
    days = ((starts + 1).astype("datetime64[D]") - starts.astype("datetime64[D]")).astype(np.float64)
    acc = totals_of(pred, starts, days, weight, data.lat, SignConvention.parse(conv).formula,
                    {k: pred[f"{k}_std"] for k in ("gpp", "reco", "nee")})
    attrs.update(totals_attributes(acc))
    return pred, attrs, (format_table(acc.by("M"), "per month", bands=False) + format_table(acc.by("Y"), "per year"))
