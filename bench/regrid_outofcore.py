"""Benchmark: a year of 0.25 deg 3-hourly forcing (2920 steps of the GLDAS grid, 1440 x 600, float32, fill over
water: 10 GB) regridded conservatively to r360x180 by ``tamrl-coupler regrid`` (out of core) and by ``cdo
remapcon``, each timed as its own process with ``/usr/bin/time -v`` (wall time, peak RSS), in the same run; the
outputs compared. The test file is made from the real GLDAS step in ../shared (its field, shifted a little every
step) and deleted at the end.

    OMP_NUM_THREADS=1 PYTHONPATH=$PWD .venv/bin/python bench/regrid_outofcore.py --dir /tmp/big [--steps 2920]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from regrid_engine import timed  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
GLDAS = REPO.parent / "shared/data/gldas/GLDAS_NOAH025_3H.A20150101.0000.021.nc4"


def make_file(path: Path, steps: int) -> float:
    """The test file: GLDAS Tair at every step, plus a diurnal and seasonal swing; one step per chunk."""
    import netCDF4

    with netCDF4.Dataset(GLDAS) as src:
        lat, lon = src["lat"][:], src["lon"][:]
        tair = np.ma.filled(src["Tair_f_inst"][0].astype(np.float32), np.nan)
    land = np.isfinite(tair)
    t0 = time.perf_counter()
    with netCDF4.Dataset(path, "w", format="NETCDF4") as ds:
        ds.createDimension("time", steps)
        ds.createDimension("lat", lat.size)
        ds.createDimension("lon", lon.size)
        t = ds.createVariable("time", "f8", ("time",))
        t.units, t.calendar = "hours since 2015-01-01 00:00:00", "standard"
        t[:] = 3.0 * np.arange(steps)
        for nm, vals, units in (("lat", lat, "degrees_north"), ("lon", lon, "degrees_east")):
            v = ds.createVariable(nm, "f4", (nm,))
            v[:], v.units, v.standard_name = vals, units, "latitude" if nm == "lat" else "longitude"
        v = ds.createVariable("Tair_f_inst", "f4", ("time", "lat", "lon"), fill_value=np.float32(-9999.0),
                              chunksizes=(1, lat.size, lon.size))
        v.units, v.standard_name = "K", "air_temperature"
        v.set_auto_mask(False)
        for i in range(steps):
            swing = np.float32(5 * np.sin(2 * np.pi * i / 8) + 10 * np.sin(2 * np.pi * i / 2920))
            v[i] = np.where(land, tair + swing, np.float32(-9999.0))
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", required=True, help="a folder with room for the test file (10 GB for a year)")
    ap.add_argument("--steps", type=int, default=2920)
    ap.add_argument("--keep", action="store_true", help="keep the test file")
    args = ap.parse_args()
    d = Path(args.dir)
    d.mkdir(parents=True, exist_ok=True)
    inp = d / "gldas_year.nc"
    made = make_file(inp, args.steps) if not inp.exists() else 0.0
    size_gb = inp.stat().st_size / 1e9
    print(f"test file {inp}: {size_gb:.2f} GB, written in {made:.0f} s", flush=True)
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    ours_cmd = [str(Path(sys.executable).parent / "tamrl-coupler"), "regrid", str(inp), "--grid", "r360x180",
                "--output", str(d / "ours.nc"), "--quiet", "--backend", "native"]
    cdo_cmd = ["cdo", "-s", "-f", "nc4", "remapcon,r360x180", str(inp), str(d / "cdo.nc")]
    results = []
    try:
        for name, cmd in (("cdo remapcon", cdo_cmd), ("tamrl-coupler regrid", ours_cmd),
                          ("cdo remapcon (again)", cdo_cmd), ("tamrl-coupler regrid (again)", ours_cmd)):
            load = os.getloadavg()[0]
            wall, rss, _ = timed(cmd, env)
            results.append((name, wall, rss, load))
            print(f"{name}: {wall:.1f} s, peak RSS {rss:.0f} MB, load before {load:.1f}", flush=True)
        import netCDF4

        with netCDF4.Dataset(d / "ours.nc") as a, netCDF4.Dataset(d / "cdo.nc") as b:
            diffs = []
            for i in (0, args.steps // 2, args.steps - 1):
                x = np.ma.filled(a["Tair_f_inst"][i].astype(np.float64), np.nan)
                y = np.ma.filled(b["Tair_f_inst"][i].astype(np.float64), np.nan)
                both = np.isfinite(x) & np.isfinite(y)
                diffs.append(float(np.max(np.abs(x[both] - y[both]))))
                print(f"step {i}: max |ours - cdo| = {diffs[-1]:.2e} K on {both.sum()} cells; "
                      f"finite ours {np.isfinite(x).sum()}, cdo {np.isfinite(y).sum()}", flush=True)
    finally:
        for f in ("ours.nc", "cdo.nc") + (() if args.keep else ("gldas_year.nc",)):
            (d / f).unlink(missing_ok=True)
        if not args.keep:
            shutil.rmtree(d, ignore_errors=True)
    print("| command | wall s | peak RSS MB | load average (1 min) before |")
    print("|---|---:|---:|---:|")
    for name, wall, rss, load in results:
        print(f"| {name} | {wall:.1f} | {rss:.0f} | {load:.1f} |")


if __name__ == "__main__":
    main()
