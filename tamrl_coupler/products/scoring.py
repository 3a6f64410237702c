"""Offline land-model benchmarking of a point-set run: simulated vs observed FluxVal fluxes per site and biome.

Writes ``sites_scores.md`` (pooled, per-biome and per-site tables of RMSE, bias and R^2 for GPP, Reco and NEE in
gC m-2 d-1, NEE = GPP - Reco), ``sites_scores_per_site.csv`` and the pictures of
:mod:`tamrl_coupler.products.siteplots` (scatter per flux, error by IGBP class, seasonal cycle per site).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tamrl_coupler import vocabulary
from tamrl_coupler.atomicfile import write_text_atomic
from tamrl_coupler.data.fluxval import read_fluxval
from tamrl_coupler.io.fluxfile import read_flux_file
from tamrl_coupler.physics.carbon import SignConvention, convert_nee
from tamrl_coupler.products.siteplots import site_plots
from tamrl_coupler.training.metrics import pooled_metrics as metrics

FLUXES = tuple(vocabulary.TARGETS)


def read_simulated(flux_file: Path) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """(site names, month starts, {flux: (site, time) gC m-2 d-1, NEE uptake-positive})."""
    ff = read_flux_file(flux_file, FLUXES)
    sim = {f: v.T / ff.unit.factor for f, v in ff.fields.items()}
    sim["nee"] = convert_nee(sim["nee"], ff.convention, SignConvention.UPTAKE_POSITIVE)
    return np.array(ff.grid.site_names), ff.starts.astype("datetime64[M]"), sim


def matched(flux_file: Path, observed: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict, dict]:
    """(sites, IGBP classes, months, observed, simulated): a point-set run's fluxes and the observed FluxVal-layout
    file's on the same (site, month) pairs, gC m-2 d-1, NEE uptake-positive."""
    names, months, sim = read_simulated(flux_file)
    obs_ds = read_fluxval(observed)
    site_pos = {s: i for i, s in enumerate(obs_ds.sites)}
    month_pos = {m: j for j, m in enumerate(obs_ds.time.astype("datetime64[M]"))}
    si = np.array([site_pos[s] for s in names])
    tj = np.array([month_pos.get(m, -1) for m in months])
    keep = tj >= 0
    obs = {f: obs_ds.targets[f][si][:, tj[keep]] for f in FLUXES}
    sim = {f: v[:, keep] for f, v in sim.items()}
    return names, obs_ds.igbp[si], months[keep], obs, sim


def pooled_scores(flux_file: Path, observed: Path) -> dict[str, dict[str, float]]:
    """Flux -> pooled n, RMSE, bias, R2 over every matched (site, month): the headline numbers."""
    _, _, _, obs, sim = matched(flux_file, observed)
    return {f: metrics(sim[f].ravel(), obs[f].ravel()) for f in FLUXES}


def score_sites(flux_file: Path, observed: Path, out_dir: Path) -> list[Path]:
    """Score a point-set run's flux file against the observed FluxVal-layout file; returns the files written."""
    names, igbp, months, obs, sim = matched(flux_file, observed)
    rows = []
    for k, s in enumerate(names):
        row = {"site": s, "igbp": igbp[k]}
        for f in FLUXES:
            m = metrics(sim[f][k], obs[f][k])
            row.update({f"{f}_{key}": v for key, v in m.items()})
        rows.append(row)
    biomes = sorted(set(igbp))
    by_biome = {b: {f: metrics(sim[f][igbp == b].ravel(), obs[f][igbp == b].ravel()) for f in FLUXES}
                for b in biomes}
    pooled = {f: metrics(sim[f].ravel(), obs[f].ravel()) for f in FLUXES}
    out_dir.mkdir(parents=True, exist_ok=True)
    md = out_dir / "sites_scores.md"
    lines = [f"# FluxVal sites: {Path(flux_file).name} against {Path(observed).name}", "",
             "gC m-2 d-1; NEE = GPP - Reco (uptake positive); observed Reco = NEE_FLUXNET + GPP.", "",
             "Note: a checkpoint trained on these same sites (the shipped one uses all 160) is scored in-sample "
             "here; held-out skill is what the model's grouped cross-validation reports.", "",
             "## Pooled", "", "| flux | n | RMSE | bias | R2 |", "|---|---|---|---|---|"]
    lines += [f"| {f} | {m['n']} | {m['rmse']:.3f} | {m['bias']:.3f} | {m['r2']:.3f} |" for f, m in pooled.items()]
    lines += ["", "## Per biome (IGBP)", "", "| IGBP | sites | " + " | ".join(
        f"{f} RMSE | {f} bias | {f} R2" for f in FLUXES) + " |", "|---|---|" + "---|" * 9]
    for b in biomes:
        cells = " | ".join(f"{by_biome[b][f]['rmse']:.3f} | {by_biome[b][f]['bias']:.3f} | {by_biome[b][f]['r2']:.3f}"
                           for f in FLUXES)
        lines.append(f"| {b or '?'} | {int((igbp == b).sum())} | {cells} |")
    lines += ["", "## Per site", "", "| site | IGBP | n | " + " | ".join(f"{f} RMSE | {f} R2" for f in FLUXES) + " |",
              "|---|---|---|" + "---|" * 6]
    for r in rows:
        cells = " | ".join(f"{r[f + '_rmse']:.3f} | {r[f + '_r2']:.3f}" for f in FLUXES)
        lines.append(f"| {r['site']} | {r['igbp']} | {r['gpp_n']} | {cells} |")
    write_text_atomic(md, "\n".join(lines) + "\n", "site scores")
    csv = out_dir / "sites_scores_per_site.csv"
    keys = list(rows[0]) if rows else []
    write_text_atomic(csv, ",".join(keys) + "\n" + "\n".join(",".join(str(r[k]) for k in keys) for r in rows) + "\n",
                      "site scores")
    pngs = site_plots(out_dir, "sites", names, igbp, months, obs, sim, SignConvention.UPTAKE_POSITIVE,
                      "Coupled TAM-RL at the FluxVal sites")
    return [md, csv, *pngs]

