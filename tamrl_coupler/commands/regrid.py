"""Regrid every variable on the input's lat/lon grid to a target grid; attributes and other variables are kept.

Fill values are treated as missing: they are left out and the remaining source renormalised (``skipna``), so a
land-only field stays a land-only field.
"""

from __future__ import annotations

import argparse

from tamrl_coupler.commands import add_output_argument, say

HELP = "regrid the lat/lon variables of a NetCDF file to a target grid"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("input", help="input NetCDF file with CF latitude/longitude coordinates")
    p.add_argument("--grid", required=True, help="target grid: CDO-style name (r360x180) or grid file")
    p.add_argument("--method", default="conservative",
                   choices=["conservative", "conservative_2nd", "bilinear", "patch", "nearest"],
                   help="remapping method (conservative for fluxes, bilinear for states)")
    add_output_argument(p, "output NetCDF file", required=True)
    p.add_argument("--weights", default=None, help="ESMF or SCRIP weight file to use instead of generating "
                   "weights (default: generate)")
    p.add_argument("--backend", default="auto", choices=["auto", "esmpy", "cdo", "native"],
                   help="weight generator (auto: esmpy if importable, else cdo if on PATH, else native)")
    p.add_argument("--cache-dir", default=None, help="weight cache directory (default: no cache)")
    p.add_argument("--variables", nargs="*", default=None, help="only these variables (default: all on the grid)")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from tamrl_coupler.regrid.ncfile import regrid_file

    n = regrid_file(Path(args.input), args.grid, Path(args.output), method=args.method, weights=args.weights,
                    backend=args.backend, cache_dir=args.cache_dir, variables=args.variables)
    say("%s: %d variable(s) regridded to %s (%s)", args.output, n, args.grid, args.method)
    return 0
