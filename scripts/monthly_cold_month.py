"""A monthly checkpoint's one-month cold start on its own data: each single month predicted from nothing (fresh
state, no history: a one-month prior) against the same month with full history.

    python scripts/monthly_cold_month.py FLUXVAL.nc CHECKPOINT [CHECKPOINT ...] [--allow-unverified]
        [--markdown OUT.md]

In-sample when the checkpoints were trained on FLUXVAL.nc (the shipped monthly one is): training fits the months
with history more closely than months from nothing, so an in-sample ratio overstates the cold-start loss at an unseen
site; the held-out ratio is the monthly CV's '(cold month)' row (``tamrl-coupler cv configs/cv/fluxval_cold.yaml``).
"""

from __future__ import annotations

import argparse
import shlex
import sys

import numpy as np

from tamrl_coupler.data.reader import read_dataset
from tamrl_coupler.model.checkpoint import load_checkpoint
from tamrl_coupler.model.inference import predict_cold_starts, predict_dataset

FLUXES = ("gpp", "reco", "nee")


def cold_month_scores(ens, data) -> dict[str, dict[str, float]]:
    """Per flux: pooled RMSE with full history, of each month from nothing, and their ratio, on the (site, month)
    pairs where both predict and an observation exists."""
    warm, cold = predict_dataset(ens, data), predict_cold_starts(ens, data, block="month")
    out = {}
    for v in FLUXES:
        obs = data.targets[v]
        ok = np.isfinite(obs) & np.isfinite(warm[v]) & np.isfinite(cold[v])
        rw = float(np.sqrt(np.mean((warm[v][ok] - obs[ok]) ** 2)))
        rc = float(np.sqrt(np.mean((cold[v][ok] - obs[ok]) ** 2)))
        out[v] = {"n": int(ok.sum()), "rmse_history": rw, "rmse_cold_month": rc, "ratio": rc / rw}
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data")
    ap.add_argument("checkpoints", nargs="+")
    ap.add_argument("--allow-unverified", action="store_true", help="also read format-3 checkpoints (older ones)")
    ap.add_argument("--markdown")
    args = ap.parse_args(argv)
    data = read_dataset(args.data, period="monthly")
    rows = []
    for path in args.checkpoints:
        s = cold_month_scores(load_checkpoint(path, allow_unverified=args.allow_unverified), data)
        rows.append(f"| {path} | " + " | ".join(f"{s[v]['rmse_history']:.3f} / {s[v]['rmse_cold_month']:.3f} "
                                                 f"({s[v]['ratio']:.3f})" for v in FLUXES) + f" | {s['gpp']['n']} |")
        print(rows[-1])
    if args.markdown:
        command = "python scripts/monthly_cold_month.py " + shlex.join(argv if argv is not None else sys.argv[1:])
        text = ["# One month from no history against the same month with full history (in-sample)", "",
                f"Made by `{command}`.", "", __doc__.split("\n\n")[2].replace("\n", " "), "",
                "Pooled RMSE, gC m-2 d-1: with full history / each month alone from nothing (ratio).", "",
                "| checkpoint | GPP | Reco | NEE | months |", "|---|---|---|---|---|", *rows]
        with open(args.markdown, "w") as fh:
            fh.write("\n".join(text) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
