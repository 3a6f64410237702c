"""Regrid every variable on the input's lat/lon grid to a target grid; attributes and other variables are kept.

Fill values are treated as missing: they are left out and the remaining source renormalised (``skipna``), so a
land-only field stays a land-only field. The file is read, regridded and written a slab of time steps at a time
(memory bounded by a few slabs plus the weights), under a temporary name renamed into place at the end.
"""

from __future__ import annotations

import argparse

from tamrl_coupler.commands import add_output_argument, add_progress_arguments, progress_mode, say

HELP = "regrid the lat/lon variables of a NetCDF file to a target grid"
METHODS = ["conservative", "conservative_normed", "conservative_2nd", "bilinear", "patch", "nearest_s2d",
           "nearest_d2s", "nearest"]


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("input", help="input NetCDF file with CF latitude/longitude coordinates")
    p.add_argument("--grid", required=True, help="target grid: CDO-style name (r360x180) or grid file")
    p.add_argument("--method", default="conservative", choices=METHODS,
                   help="remapping method (conservative for fluxes, bilinear for states); xESMF's names")
    add_output_argument(p, "output NetCDF file (never the input)", required=True)
    p.add_argument("--weights", default=None, help="ESMF or SCRIP weight file to use instead of generating "
                   "weights (default: generate); checked against the grids")
    p.add_argument("--backend", default="auto", choices=["auto", "esmpy", "native", "cdo"],
                   help="weight generator (auto: esmpy if importable, else native, else cdo)")
    p.add_argument("--cache-dir", default=None, help="weight cache directory (default: no cache)")
    p.add_argument("--variables", nargs="*", default=None, help="only these variables (default: all on the grid)")
    p.add_argument("--cast-integers", action="store_true",
                   help="regrid integer variables (without scale_factor/add_offset) conservatively as floats; "
                        "refused otherwise")
    p.add_argument("--repack", action="store_true",
                   help="write packed variables with the input's scale_factor/add_offset (default: as floats)")
    p.add_argument("--compress", type=int, default=0, choices=range(0, 10),
                   help="zlib level of the output variables, 0: none, as CDO (default: %(default)s)")
    p.add_argument("--slab-mb", type=int, default=8,
                   help="MB of source values (as float64) read and regridded at once per variable")
    add_progress_arguments(p)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from tamrl_coupler.errors import InputError
    from tamrl_coupler.host.progress import make_progress
    from tamrl_coupler.regrid.regridfile import regrid_file

    if args.slab_mb < 1:
        raise InputError(f"--slab-mb {args.slab_mb}: expected a positive number of MB")
    mode = progress_mode(args)
    bar: list = []

    def progress(done: int, total: int) -> None:
        if not bar:
            bar.append(make_progress(total, "regrid slabs", mode))
        if bar[0] is not None:
            bar[0].update(1)

    try:
        n = regrid_file(Path(args.input), args.grid, Path(args.output), method=args.method, weights=args.weights,
                        backend=args.backend, cache_dir=args.cache_dir, variables=args.variables, progress=progress,
                        slab_bytes=args.slab_mb * 2**20, cast_integers=args.cast_integers, repack=args.repack,
                        compress=args.compress)
    finally:
        if bar and bar[0] is not None:
            bar[0].close()
    say("%s: %d variable(s) regridded to %s (%s)", args.output, n, args.grid, args.method)
    return 0
