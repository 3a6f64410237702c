"""The global test bed: a checkpoint over the whole land surface on a repeated CRU CL 1.0 climatological year (1
degree, CO2 390 ppm), its annual and monthly global and latitude-band totals for each budget mode against the
published anchors, as results/testbed_<name>.md and .json. Needs the shared data (../shared: data/cru_cl, and
data/gldas for the land fraction). With --write-forcing, writes the forcing as files instead: the monthly and the
daily drivers (site = land cell, for `predict`), three-hourly CF forcing of the first months and a run config for
the coupled component (`run`)."""

from __future__ import annotations

import argparse

from tamrl_coupler.commands import add_output_argument, add_progress_arguments, progress_mode, say

HELP = "global test bed: a checkpoint over all land on the CRU CL 1.0 normals -> global totals per budget mode"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", default="daily", metavar="daily|monthly|PATH",
                        help="the checkpoint to run (a shipped name or an .npz file)")
    parser.add_argument("--shared", default="${TAMRL_SHARED:-../shared}",
                        help="the shared data folder holding data/cru_cl and data/gldas")
    add_output_argument(parser, "output directory (model output cache, forcing files)", default="testbed_out",
                        directory=True)
    parser.add_argument("--results", default=None, metavar="STEM",
                        help="write the table as STEM.md and STEM.json (default: OUTPUT/testbed_<checkpoint>)")
    parser.add_argument("--years", type=int, default=3, help="repeated years from a cold start")
    parser.add_argument("--vpd", choices=("diurnal", "mean_temperature"), default="diurnal",
                        help="daily VPD: the day's mean of es(T(t)) - e over the diurnal cycle, or es(Tmean) - e")
    parser.add_argument("--weather", choices=("synthetic", "none"), default="synthetic",
                        help="days with tower-calibrated weather (wet/dry, clear/cloudy) or smooth days")
    parser.add_argument("--land", choices=("gldas", "cru"), default="gldas",
                        help="land fraction: the GLDAS 0.25-degree mask, or CRU's own 0.5-degree data mask")
    parser.add_argument("--no-fill-radiation", action="store_true",
                        help="leave out the 0.5-degree cells CRU has no radiation for (instead of filling them)")
    parser.add_argument("--every", type=int, default=1, help="every n-th cell only (a quick look)")
    parser.add_argument("--write-prior", default=None, metavar="FILE",
                        help="also write the budget prior (the last year's monthly means) to FILE (default: none "
                             "written)")
    parser.add_argument("--prior", default="auto", metavar="auto|none|FILE",
                        help="the budget prior used in the table (auto: the one beside the checkpoint, else the "
                             "one --write-prior makes, else none)")
    parser.add_argument("--write-forcing", action="store_true",
                        help="write the forcing files (and a run config) into OUTPUT instead of running the model")
    parser.add_argument("--subdaily-months", type=int, default=3,
                        help="--write-forcing: months of three-hourly forcing for the coupled component")
    add_progress_arguments(parser)


def run(args: argparse.Namespace) -> int:
    import os
    from pathlib import Path

    from tamrl_coupler.errors import InputError

    if args.years < 1 or args.every < 1:
        raise InputError("--years and --every: expected positive numbers")
    shared = Path(os.path.expandvars(args.shared.replace("${TAMRL_SHARED:-../shared}",
                                                         os.environ.get("TAMRL_SHARED", "../shared"))))
    out = Path(args.output)
    out.mkdir(exist_ok=True)
    from tamrl_coupler.host.testbed import load_cells

    cells = load_cells(shared, args.land, not args.no_fill_radiation, args.every)
    if args.write_forcing:
        for path in write_forcing(args, cells, out):
            say("wrote %s", path)
        return 0
    return table(args, cells, out)


def write_forcing(args: argparse.Namespace, cells, out):
    import numpy as np
    import yaml

    from tamrl_coupler.io.testbed import (
        daily_drivers,
        daily_fields,
        monthly_drivers,
        write_driver_file,
        write_subdaily_month,
    )

    settings = {"vpd": args.vpd, "weather": args.weather, "land": args.land}
    attrs = {"testbed_settings": " ".join(f"{k}={v}" for k, v in settings.items())}
    days = daily_fields(cells, vpd=args.vpd, weather=args.weather)
    paths = [write_driver_file(out / "testbed_monthly.nc", cells, monthly_drivers(cells, args.vpd), "monthly",
                               args.years, attrs),
             write_driver_file(out / "testbed_daily.nc", cells, daily_drivers(days), "daily", args.years, attrs)]
    months = np.datetime64("2001-01") + np.arange(args.subdaily_months)
    for m in months:
        paths.append(write_subdaily_month(out / f"testbed_3hourly_{str(m).replace('-', '')}.nc", cells, days, m,
                                          attrs))
    end = str((months[-1] + 1).astype("datetime64[D]"))
    config = {"reference_date": "2001-01-01", "start": "2001-01-01T00:00:00", "end": f"{end}T00:00:00",
              "coupling_step": 10800, "host": {"grid": "forcing"},
              "forcing": {"files": ["testbed_3hourly_*.nc"], "fill_policy": "error"},
              "model": {"checkpoint": args.checkpoint, "grid": "host", "block_size": 256},
              "exports": {"unit": "gC m-2 d-1", "sign_convention": "uptake_positive"},
              "budget": {"mode": "as_trained"},
              "output": {"prefix": "testbed", "every": 8}}
    path = out / "testbed_run.yaml"
    path.write_text("# The global test bed through the coupled component: 3-hourly CRU CL 1.0 climatological "
                    "forcing on the 1-degree land cells\n# (made by tamrl-coupler testbed --write-forcing); "
                    "tamrl-coupler run testbed_run.yaml --output run_out\n" + yaml.safe_dump(config, sort_keys=False))
    return [*paths, path]


def table(args: argparse.Namespace, cells, out) -> int:
    import json
    import sys
    from pathlib import Path

    from tamrl_coupler.host.progress import make_progress
    from tamrl_coupler.host.testbed import (
        TestbedRun,
        band_rows,
        budget_rows,
        climate_rows,
        load_run,
        markdown,
        monthly_means,
        raw_key,
        run_testbed,
        save_run,
        spread_of_totals,
    )
    from tamrl_coupler.io.budgetprior import prior_path_for, read_budget_prior, write_budget_prior
    from tamrl_coupler.io.testbed import year_axis
    from tamrl_coupler.model import load_checkpoint
    from tamrl_coupler.model.checkpoint import ensemble_fingerprint, resolve_checkpoint

    path = resolve_checkpoint(args.checkpoint)
    ens = load_checkpoint(path)
    fingerprint = ensemble_fingerprint(ens)
    settings = {"years": args.years, "vpd": args.vpd, "weather": args.weather, "land": args.land,
                "fill_radiation": not args.no_fill_radiation, "every": args.every}
    name = Path(path).stem
    raw = out / f"raw_{name}_{raw_key(fingerprint, settings)}.npz"
    if raw.exists():
        run = load_run(raw)
        say("model output from %s (same checkpoint and settings)", raw)
    else:
        bar = make_progress(cells.size, f"{name} over {cells.size} cells", progress_mode(args), unit="cell")
        fields = run_testbed(ens, cells, args.years, args.vpd, args.weather, progress=bar)
        if bar is not None:
            bar.close()
        run = TestbedRun(name, fingerprint, ens.meta.period, year_axis(ens.meta.period, args.years), fields, settings)
        save_run(raw, run)
    if args.write_prior:
        g, r = monthly_means(run, args.years)
        write_budget_prior(args.write_prior, cells.index, g, r, fingerprint, {
            "source": f"{name} on the CRU CL 1.0 global test bed, year {args.years} of a repeated climatological "
                      f"year ({json.dumps(settings)})", "references": cells.attrs["references"],
            "license": cells.attrs["license"]})
        say("wrote %s", args.write_prior)
    prior_file = {"auto": prior_path_for(path), "none": None}.get(args.prior, Path(args.prior))
    if args.prior == "auto" and not prior_file.exists():
        prior_file = Path(args.write_prior) if args.write_prior else None
    prior, note = None, "none"
    if prior_file is not None and prior_file.exists():
        bp = read_budget_prior(prior_file)
        g, r, _ = bp.for_cells(cells.lat, cells.lon)
        prior = (g, r)
        same = "made from this checkpoint" if bp.fingerprint == fingerprint else "made from ANOTHER checkpoint"
        note = f"{prior_file.name} ({same}; {bp.attrs.get('source', '')})"
    rows = budget_rows(run, cells, prior)
    bands = band_rows(run, cells)
    spreads = spread_of_totals(run, cells)
    command = "tamrl-coupler testbed " + " ".join(a for a in sys.argv[2:] if a)
    climate = climate_rows(run, cells)
    text = markdown(run, cells, rows, bands, spreads, command, note, climate)
    stem = Path(args.results) if args.results else out / f"testbed_{name}"
    if not stem.parent.is_dir():
        from tamrl_coupler.errors import InputError

        raise InputError(f"--results {args.results}: the directory {stem.parent} does not exist")
    Path(f"{stem}.md").write_text(text)
    Path(f"{stem}.json").write_text(json.dumps({"checkpoint": name, "fingerprint": fingerprint, "settings": settings,
                                                "cells": cells.size, "bands": bands, "spreads": spreads,
                                                "climate": climate,
                                                "rows": rows, "prior": note}, indent=1))
    at = rows[0]
    print(f"{name}: GPP {at['gpp'][-1]:.1f}, Reco {at['reco'][-1]:.1f}, NEE {at['nee'][-1]:+.2f} PgC/yr (year "
          f"{args.years}, as trained)")  # the result, printed
    say("wrote %s.md, %s.json", stem, stem)
    return 0
