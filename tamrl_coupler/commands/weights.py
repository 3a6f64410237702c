"""Write an ESMF-format weight file between two grids (names like r360x180 or grid files)."""

from __future__ import annotations

import argparse

from tamrl_coupler.commands import add_output_argument, say

HELP = "generate remapping weights between two grids and write them in ESMF format"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("src", help="source grid: CDO-style name (r360x180) or grid file (CF, SCRIP, ESMF mesh, UGRID)")
    p.add_argument("dst", help="destination grid: name or grid file")
    p.add_argument("--method", default="conservative",
                   choices=["conservative", "conservative_2nd", "bilinear", "patch", "nearest_s2d", "nearest_d2s",
                            "nearest"],
                   help="remapping method (xESMF's names)")
    p.add_argument("--backend", default="auto", choices=["auto", "esmpy", "native", "cdo"],
                   help="weight generator (auto: esmpy if importable, else native, else cdo); a conservative "
                        "result whose area integral is off by more than 1e-10 is refused")
    p.add_argument("--normalization", default="destarea", choices=["destarea", "fracarea"],
                   help="row normalisation written to the file (ESMF's default is destarea)")
    add_output_argument(p, "output weight file (.nc)", required=True)


def run(args: argparse.Namespace) -> int:
    import time

    from tamrl_coupler.regrid.backends import choose_backend, generate_checked
    from tamrl_coupler.regrid.grid import Grid

    src, dst = Grid.resolve(args.src), Grid.resolve(args.dst)
    mod = choose_backend(src, dst, args.method, args.backend)
    t0 = time.perf_counter()
    w = generate_checked(mod, src, dst, args.method)
    dt = time.perf_counter() - t0
    if w.normalization != "none":
        w = w.to_normalization(args.normalization)
    w.attrs.update({"domain_a": src.name, "domain_b": dst.name, "tamrl_backend": mod.NAME})
    w.attach_grids(src, dst)
    w.write(args.output)
    say(f"{args.output}: {args.method} weights {src.name} {src.shape} -> {dst.name} {dst.shape}, backend {mod.NAME}, "
        f"{w.matrix.nnz} entries, {dt:.2f} s")
    return 0
