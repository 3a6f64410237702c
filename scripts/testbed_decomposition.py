"""Why the daily model's global GPP was ~180 PgC/yr on the global test bed: the forcing's construction changed one
ingredient at a time, from the issue's (CRU's own land mask, cells without CRU radiation left out, VPD from the mean
temperature, smooth days) to the shipped one.

    python scripts/testbed_decomposition.py --shared ../shared --every 10 --output results/testbed_decomposition

Runs `tamrl-coupler testbed` five times on every n-th cell (two years from a cold start, the second year reported;
the model output is cached in --cache) and tabulates global and band GPP, Reco and NEE of each step.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

STEPS = (
    ("the issue's construction: CRU's 0.5-degree data mask as land, cells without CRU radiation left out, VPD = "
     "es(Tmean) - e, smooth days", ["--land", "cru", "--no-fill-radiation", "--vpd", "mean_temperature",
                                    "--weather", "none"]),
    ("+ the cells without CRU radiation filled (islands and coasts: nearest cell's transmissivity)",
     ["--land", "cru", "--vpd", "mean_temperature", "--weather", "none"]),
    ("+ land fraction from the GLDAS 0.25-degree mask (coasts no longer counted whole)",
     ["--land", "gldas", "--vpd", "mean_temperature", "--weather", "none"]),
    ("+ VPD the day's mean of es(T(t)) - e over the diurnal cycle", ["--land", "gldas", "--vpd", "diurnal",
                                                                     "--weather", "none"]),
    ("+ days with weather (tower-calibrated synthetic weather): the shipped test bed",
     ["--land", "gldas", "--vpd", "diurnal", "--weather", "synthetic"]),
)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shared", default="../shared")
    ap.add_argument("--every", type=int, default=10)
    ap.add_argument("--checkpoint", default="daily")
    ap.add_argument("--cache", default="testbed_out/decomposition")
    ap.add_argument("--output", default="results/testbed_decomposition")
    args = ap.parse_args()
    cache = Path(args.cache)
    cache.mkdir(parents=True, exist_ok=True)
    rows = []
    for i, (what, opts) in enumerate(STEPS):
        stem = cache / f"step{i}"
        cmd = ["tamrl-coupler", "testbed", "--checkpoint", args.checkpoint, "--shared", args.shared, "--every",
               str(args.every), "--years", "2", "-o", str(cache), "--prior", "none", *opts, "--results", str(stem)]
        subprocess.run([sys.executable, "-m", "tamrl_coupler", *cmd[1:]], check=True, capture_output=True)
        d = json.loads(stem.with_suffix(".json").read_text())
        at = d["rows"][0]
        rows.append({"step": what, "options": " ".join(opts), "gpp": at["gpp"][-1], "reco": at["reco"][-1],
                     "nee": at["nee"][-1], "bands_gpp": d["bands"]["gpp"], "land_Mkm2": sum(d["bands"]["area_Mkm2"]),
                     "nee_monthly": at["nee_monthly_last_year"]})
    out = {"command": " ".join(["python", *sys.argv]), "rows": rows}
    stem = Path(args.output)
    stem.with_suffix(".json").write_text(json.dumps(out, indent=1))
    lines = ["# Why the daily model's global GPP was ~180 PgC/yr: the test bed's forcing, one change at a time", "",
             f"Made by `{out['command']}` (`tamrl-coupler testbed` on every {args.every}th cell, areas scaled; the "
             "second of two repeated years; PgC/yr; bands 90S-23.5S / 23.5S-0 / 0-23.5N / 23.5N-50N / 50N-90N).", "",
             "| construction | land (M km2) | GPP | change | GPP by band | Reco | NEE | global NEE Jan / Jul |",
             "|---|---|---|---|---|---|---|---|"]
    prev = None
    for r in rows:
        change = "" if prev is None else f"{r['gpp'] - prev:+.1f}"
        lines.append(f"| {r['step']} (`{r['options']}`) | {r['land_Mkm2']:.1f} | {r['gpp']:.1f} | {change} | "
                     f"{' / '.join(f'{v:.1f}' for v in r['bands_gpp'])} | {r['reco']:.1f} | {r['nee']:+.1f} | "
                     f"{r['nee_monthly'][0]:+.2f} / {r['nee_monthly'][6]:+.2f} |")
        prev = r["gpp"]
    stem.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
