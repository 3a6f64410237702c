"""The CV's written results: tables (``.md``, the exact command on top), metrics (``.json``) and the held-out
predictions (``_predictions.npz``), from the dict :func:`tamrl_coupler.training.cv.run_cv` returns."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from tamrl_coupler.atomicfile import atomic_path, write_text_atomic
from tamrl_coupler.data.dataset import FluxDataset
from tamrl_coupler.settings.cv import CVConfig


def _pct(a: float, b: float) -> str:
    return f"{100.0 * (a - b) / b:+.1f} %"


def _igbp_detail(rows: dict, classes: list[str], counts: dict[str, int]) -> list[str]:
    """Every metric per IGBP class for the all-inputs rows: RMSE / R2 / bias / median per-site RMSE of each flux."""
    head = " | ".join(f"{v} RMSE | {v} R2 | {v} bias | {v} med.site" for v in ("GPP", "Reco", "NEE"))
    lines = ["", "## Per IGBP class, every metric (all inputs; gC m-2 d-1)", "", f"| class (sites) | model | {head} |",
             "|---|---|" + "---|" * 12]
    names = [n for n in rows if "(" not in n]
    for c in classes:
        for name in names:
            m = rows[name]["by_igbp"][c]
            vals = " | ".join(f"{m[v]['rmse']:.3f} | {m[v]['r2']:.3f} | {m[v]['bias']:+.3f} | "
                              f"{m[v]['median_site_rmse']:.3f}" for v in ("gpp", "reco", "nee"))
            lines.append(f"| {c} ({counts.get(c, '?')}) | {name} | {vals} |")
    return lines


def write_results(results: dict, cfg: CVConfig, command: str, data: FluxDataset, out: str | Path) -> tuple[Path, Path]:
    """results/cv_*.json (everything) and .md (the tables, the exact command on top)."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    js, md = out.with_suffix(".json"), out.with_suffix(".md")
    preds = results.get("predictions", {})
    unit, step, where = (("datetime64[D]", "day", "daily tower sites") if data.period == "daily" else
                         ("datetime64[M]", "month", "FluxVal sites"))
    payload = {"command": command, "data": cfg.data, "n_sites": len(results["folds"]),
               **{k: v for k, v in results.items() if k != "predictions"}}
    write_text_atomic(js, json.dumps(payload, indent=1, default=float), "CV results")
    if preds:  # the held-out predictions themselves, for diagnostics beyond the tables
        arrays = {f"{row}/{var}": a for row, p in preds.items() for var, a in p.items()}  # float64: exact NEE
        with atomic_path(out.with_name(out.name + "_predictions.npz"), "CV predictions") as tmp, \
                open(tmp, "wb") as fh:
            np.savez_compressed(fh, site=np.array(list(results["folds"])),
                                fold=np.array(list(results["folds"].values())),
                                time=data.time.astype(unit).astype(str), **arrays)
    rows = results["rows"]
    grouping = {"site": "site", "forcing_cell": "forcing cell: sites with identical drivers in one fold",
                "colocated": "co-location: towers within 5 km in one fold"}[cfg.group_by]
    lines = [f"# Grouped {cfg.folds}-fold CV on {where} (grouped by {grouping}, stratified by IGBP)", "",
             "Made by:", "", "```", command, "```", "",
             f"{len(results['folds'])} sites, {data.period}, targets in gC m-2 d-1, NEE = GPP - Reco (uptake "
             f"positive). Pooled metrics over all held-out (site, {step}) pairs; median per-site RMSE over sites with "
             f">= {cfg.min_site_obs} {step}s. Wall time {results['wall_seconds'] / 60:.1f} min. "
             "'(met-only)': the same trained models evaluated with the optional drivers absent (NaN) "
             "(XGBoost: retrained without those features)."
             f" '(cold start)': every calendar {'month' if data.period == 'daily' else 'year'} predicted alone "
             "from a fresh state (no history, zero LSTM state), on the same periods.", ""]
    lines += ["## Overall", "",
              "| model | GPP RMSE | GPP R2 | GPP bias | GPP med.site | Reco RMSE | Reco R2 | NEE RMSE | NEE R2 "
              "| NEE bias | NEE med.site | balance violation RMS (max) |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, t in rows.items():
        a, bv = t["all"], t["balance_violation"]
        lines.append(
            f"| {name} | {a['gpp']['rmse']:.3f} | {a['gpp']['r2']:.3f} | {a['gpp']['bias']:+.3f} | "
            f"{a['gpp']['median_site_rmse']:.3f} | {a['reco']['rmse']:.3f} | {a['reco']['r2']:.3f} | "
            f"{a['nee']['rmse']:.3f} | {a['nee']['r2']:.3f} | {a['nee']['bias']:+.3f} | "
            f"{a['nee']['median_site_rmse']:.3f} | {bv['rms']:.2e} ({bv['max_abs']:.2e}) |")
    base = next((n for n in rows if rows[n] and n.startswith("xgboost") and "(" not in n), None)
    if base:
        lines += ["", f"## Relative to {base} (pooled RMSE; negative = better)", "",
                  "| model | GPP | Reco | NEE |", "|---|---|---|---|"]
        b = rows[base]["all"]
        for name, t in rows.items():
            a = t["all"]
            lines.append(f"| {name} | {_pct(a['gpp']['rmse'], b['gpp']['rmse'])} | "
                         f"{_pct(a['reco']['rmse'], b['reco']['rmse'])} | {_pct(a['nee']['rmse'], b['nee']['rmse'])} |")
    if results.get("cold_warm"):
        block = "month" if data.period == "daily" else "year"
        lines += ["", f"## Cold start (each {block} from a fresh state) over full history: pooled RMSE ratio", "",
                  "| model | GPP | Reco | NEE |", "|---|---|---|---|"]
        for name, r in results["cold_warm"].items():
            lines.append(f"| {name} | {r['gpp']:.3f} | {r['reco']:.3f} | {r['nee']:.3f} |")
    lines += ["", "## Per IGBP class (pooled RMSE GPP / NEE; sites in class)", ""]
    classes = sorted(next(iter(rows.values()))["by_igbp"])
    counts = {c: int((data.igbp == c).sum()) for c in classes}
    lines.append("| model | " + " | ".join(f"{c} ({counts.get(c, '?')})" for c in classes) + " |")
    lines.append("|---|" + "---|" * len(classes))
    for name, t in rows.items():
        cells = [f"{t['by_igbp'][c]['gpp']['rmse']:.2f} / {t['by_igbp'][c]['nee']['rmse']:.2f}" for c in classes]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += _igbp_detail(rows, classes, counts)
    lines += ["", "## Cost", "", "| variant | CPU-seconds (sum over folds) | best epochs (members x folds) |",
              "|---|---|---|"]
    for name, v in results["variants"].items():
        be = v["best_epochs"]
        lines.append(f"| {name} | {v['seconds']:.0f} | {f'median {int(np.median(be))}' if be else '-'} |")
    write_text_atomic(md, "\n".join(lines) + "\n", "CV report")
    return md, js
