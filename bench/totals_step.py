"""Cost of the global totals in the offline driver's step (rank 0 counts every step of every cell): one
``TotalsAccumulator.add`` (GPP, Reco, NEE and their spreads; bands) and the exact sum it rests on against
``math.fsum`` and the memory-bandwidth floor of one pass over the values (``np.sum``), same run, same machine.

    python bench/totals_step.py            # writes nothing; the table goes to stdout
"""

from __future__ import annotations

import math
import time

import numpy as np

from tamrl_coupler.physics.totals import BANDS, TotalsAccumulator, band_index, exact_sums


def best(fn, repeat: int = 7) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times) * 1e3


def main() -> None:
    rng = np.random.default_rng(0)
    print("| land cells | np.sum (ms) | math.fsum (ms) | exact_sums + 5 bands (ms) | fsum + 5 band fsums (ms) "
          "| add(): 3 fluxes + 3 spreads (ms) |")
    print("|---|---|---|---|---|---|")
    for n in (17_344, 300_000, 1_000_000):
        print(row(n, rng))


def row(n: int, rng: np.random.Generator) -> str:
    lat, w = rng.uniform(-60, 80, n), rng.uniform(1e8, 1e9, n)
    g = rng.uniform(0, 10, n) * w * 0.125
    band = band_index(lat)
    members = [np.flatnonzero(band == j) for j in range(len(BANDS))]
    acc = TotalsAccumulator(w, lat)
    fl = {k: rng.uniform(0, 10, n) for k in ("gpp", "reco", "nee")}
    sp = {k: rng.uniform(0, 1, n) for k in ("gpp", "reco", "nee")}
    day = np.datetime64("2001-01-01T00:00:00")
    t_np = best(lambda: g.sum())
    t_fsum = best(lambda: math.fsum(g.tolist()))
    t_exact = best(lambda: exact_sums(g, band, len(BANDS)))
    t_old = best(lambda: (math.fsum(g.tolist()), [math.fsum(g[m].tolist()) for m in members]))
    t_add = best(lambda: acc.add(day, 0.125, fl, sp))
    return f"| {n:,} | {t_np:.2f} | {t_fsum:.1f} | {t_exact:.1f} | {t_old:.1f} | {t_add:.1f} |"

if __name__ == "__main__":
    main()
