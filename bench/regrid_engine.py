"""Benchmark: conservative weight generation, the native engine against CDO's ``gencon`` (same machine, same run):
wall time and peak memory (``/usr/bin/time -v``, each generation in its own process), entries, and whether the
result conserves (the check every backend result passes: bench/results/regrid.md).

Pairs: 1 deg -> 0.25 deg (r360x180 -> r1440x720; native with lat-lon edges, and with great-circle edges as ESMF),
a regional rotated-pole grid (EUR-11-like: 424 x 412 cells of 0.11 deg) -> 1 deg, a cubed-sphere mesh C96
(55296 cells, about 1 deg) -> 1 deg.

    OMP_NUM_THREADS=1 PYTHONPATH=$PWD .venv/bin/python bench/regrid_engine.py [--out bench/results/regrid_engine.md]
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

CASES = {
    "1deg_to_025deg": "r360x180 -> r1440x720 (1 deg -> 0.25 deg)",
    "rotated_to_1deg": "rotated pole EUR-11-like (412, 424) -> r360x180",
    "cubedsphere_to_1deg": "cubed sphere C96 (55296 cells) -> r360x180",
}


def grids(case: str):
    from tamrl_coupler.regrid import Grid, util

    if case == "1deg_to_025deg":
        return Grid.from_name("r360x180"), Grid.from_name("r1440x720")
    if case == "rotated_to_1deg":
        return util.rotated_pole_grid(424, 412, 0.11, 39.25, -162.0, name="EUR-11-like"), Grid.from_name("r360x180")
    return util.cubed_sphere(96), Grid.from_name("r360x180")


def generate(case: str, edges: str) -> None:
    """One generation (run in a child process under /usr/bin/time): prints seconds, entries and the check."""
    import numpy as np

    from tamrl_coupler.regrid.backends import check_conservation, native

    src, dst = grids(case)
    t0 = time.perf_counter()
    w = native.conservative(src, dst, edges=edges)
    dt = time.perf_counter() - t0
    check_conservation(w, src, dst, "native")
    print(f"RESULT seconds={dt:.3f} nnz={w.matrix.nnz} frac_a_err={np.max(np.abs(w.frac_a - 1)):.2e}")


def timed(cmd: list[str], env=None) -> tuple[float, float, str]:
    """Wall seconds and peak RSS (MB) of ``cmd`` from /usr/bin/time -v, and its stdout."""
    res = subprocess.run(["/usr/bin/time", "-v", *cmd], capture_output=True, text=True, env=env)
    if res.returncode != 0:
        raise RuntimeError(f"{cmd} failed: {res.stderr[-2000:]}")
    wall = re.search(r"Elapsed \(wall clock\) time.*: (?:(\d+):)?(\d+):([\d.]+)", res.stderr)
    h, m, s = wall.groups()
    seconds = int(h or 0) * 3600 + int(m) * 60 + float(s)
    rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", res.stderr).group(1)) / 1024
    return seconds, rss, res.stdout


def cdo_case(case: str, tmp: Path) -> tuple[float, float, str, int]:
    """CDO's gencon on the same grids (our grid descriptions, as the cdo backend writes them), timed as its own
    process; then whether its weights pass the conservation check."""
    from tamrl_coupler.errors import RegridError
    from tamrl_coupler.regrid import Weights
    from tamrl_coupler.regrid.backends import check_conservation
    from tamrl_coupler.regrid.backends.cdo import _write_mask_field, grid_description

    src, dst = grids(case)
    (tmp / "src.txt").write_text(grid_description(src))
    (tmp / "dst.txt").write_text(grid_description(dst))
    _write_mask_field(src, tmp / "srcmask.nc")
    out = tmp / "w.nc"
    wall, rss, _ = timed(["cdo", "-s", f"gencon,{tmp / 'dst.txt'}", f"-setgrid,{tmp / 'src.txt'}",
                          str(tmp / "srcmask.nc"), str(out)])
    w = Weights.read(out)
    w.method = "conservative"
    try:
        check_conservation(w, src, dst, "cdo")
        verdict = "passes"
    except RegridError as exc:
        verdict = "refused: " + str(exc).split("refused, ")[-1].split(" (relative")[0]
    return wall, rss, verdict, w.matrix.nnz


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=str(REPO / "bench/results/regrid_engine.md"))
    ap.add_argument("--child", nargs=2, metavar=("CASE", "EDGES"), help=argparse.SUPPRESS)
    ap.add_argument("--cases", nargs="*", default=list(CASES))
    args = ap.parse_args()
    if args.child:
        generate(*args.child)
        return
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    rows = []
    for case in args.cases:
        runs = [("native (lat-lon edges)", "auto")] if case == "1deg_to_025deg" else []
        runs.append(("native (great circles)", "great_circle"))
        for label, edges in runs:
            wall, rss, out = timed([sys.executable, __file__, "--child", case, edges], env)
            m = dict(re.findall(r"(\w+)=([\w.+-]+)", out.split("RESULT", 1)[1]))
            rows.append((CASES[case], label, wall, float(m["seconds"]), rss, int(m["nnz"]),
                         f"passes (frac_a within {m['frac_a_err']} of 1)"))
            print(rows[-1], flush=True)
        with tempfile.TemporaryDirectory() as tmp:
            wall, rss, verdict, nnz = cdo_case(case, Path(tmp))
        rows.append((CASES[case], "cdo gencon (CDO 2.1.1)", wall, wall, rss, nnz, verdict))
        print(rows[-1], flush=True)
    load = os.getloadavg()
    lines = ["| pair | generator | wall s (process) | s (generation) | peak RSS MB | entries | conservation check |",
             "|---|---|---:|---:|---:|---:|---|"]
    lines += [f"| {p} | {g} | {w:.1f} | {s:.1f} | {r:.0f} | {n} | {v} |" for p, g, w, s, r, n, v in rows]
    text = (f"Command: `OMP_NUM_THREADS=1 PYTHONPATH=$PWD .venv/bin/python bench/regrid_engine.py`; "
            f"load average at the end {load[0]:.1f}, {load[1]:.1f}, {load[2]:.1f} (2 cores shared).\n\n"
            + "\n".join(lines) + "\n")
    Path(args.out).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
