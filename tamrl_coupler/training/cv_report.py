"""The CV's written results: tables (``.md``, the exact command on top), metrics (``.json``) and the held-out
predictions (``_predictions.npz``), from the dict :func:`tamrl_coupler.training.cv.run_cv` returns -- or, with
:func:`rescore`, from a predictions file alone (the report rebuilt without training anything)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from tamrl_coupler.atomicfile import atomic_path, write_text_atomic
from tamrl_coupler.data.dataset import FluxDataset
from tamrl_coupler.errors import InputError
from tamrl_coupler.settings.cv import CVConfig
from tamrl_coupler.training.cv_site_report import site_report, site_report_lines
from tamrl_coupler.training.metrics import balance_violation, metrics_table


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


def held_out_sites(data: FluxDataset, sites) -> FluxDataset:
    """``data`` restricted to ``sites`` in that order (the CV's site order); a missing site is an error."""
    index = {str(s): i for i, s in enumerate(data.sites)}
    missing = [str(s) for s in sites if str(s) not in index]
    if missing:
        raise InputError(f"{data.source}: site(s) {missing[:5]} of the CV predictions are not in the data")
    return data.subset(np.array([index[str(s)] for s in sites], dtype=int))


def read_predictions(path: str | Path, sub: FluxDataset | None = None) -> tuple[dict, np.ndarray, np.ndarray]:
    """A CV's ``_predictions.npz`` -> ({row: {var: (site, time)}}, sites, folds); with ``sub`` (the data on the
    file's sites) its time axis must match."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"CV predictions {path} do not exist (written by `tamrl-coupler cv` beside its tables)")
    p = np.load(path)
    if sub is not None and len(p["time"]) != len(sub.time):
        raise InputError(f"{path}: {len(p['time'])} periods, the data have {len(sub.time)}: predictions of another "
                         "dataset?")
    preds: dict[str, dict[str, np.ndarray]] = {}
    for key in p.files:
        if "/" in key:
            row, var = key.split("/", 1)
            preds.setdefault(row, {})[var] = np.asarray(p[key], dtype=np.float64)
    return preds, np.asarray(p["site"]).astype(str), np.asarray(p["fold"]).astype(int)


def _merge_baseline_rows(preds: dict, cfg: CVConfig, sites: np.ndarray, fold: np.ndarray, sub: FluxDataset
                         ) -> list[str]:
    """Rows of ``cfg.baseline_predictions`` this CV lacks, added to ``preds`` (same sites and folds, checked);
    the first file that has a row gives it."""
    added = []
    for path in cfg.baseline_predictions:
        other, o_sites, o_fold = read_predictions(path, sub)
        if not np.array_equal(o_sites, sites) or not np.array_equal(o_fold, fold):
            raise InputError(f"{path}: other sites or folds than this CV's (same data, folds and seed needed)")
        new = [row for row in other if row not in preds]
        preds.update({row: other[row] for row in new})
        added += new
    return added


def rescore(cfg: CVConfig, data: FluxDataset, out: str | Path, predictions: str | Path | None = None) -> dict:
    """The results dict of a finished CV rebuilt from its predictions file (and its ``.json`` beside it, for the
    cost and wall time): :func:`write_results` then writes every table again, the site-honest ones included."""
    import json

    out = Path(out)
    path = Path(predictions) if predictions else out.with_name(out.name + "_predictions.npz")
    preds, sites, fold = read_predictions(path)
    sub = held_out_sites(data, sites)
    read_predictions(path, sub)  # the time axis checked
    old_json = path.with_name(path.name.removesuffix("_predictions.npz") + ".json")
    old = json.loads(old_json.read_text()) if old_json.is_file() else {}
    results = {"folds": {str(s): int(f) for s, f in zip(sites, fold, strict=True)}, "rows": {},
               "wall_seconds": float(old.get("wall_seconds", float("nan"))),
               "variants": old.get("variants", {}), "predictions": preds,
               # the CV's own command: a rescored report's json keeps it as made_by (a second rescore must too)
               "made_by": old.get("made_by") or old.get("command", "")}
    for name, p in preds.items():
        table = metrics_table(p, sub.targets, sub.igbp, cfg.min_site_obs)
        table["balance_violation"] = balance_violation(p["gpp"], p["reco"], p["nee"])
        results["rows"][name] = table
    from tamrl_coupler.training.cv import cold_warm_table

    results["cold_warm"] = cold_warm_table(preds, sub.targets)
    return results


def write_results(results: dict, cfg: CVConfig, command: str, data: FluxDataset, out: str | Path) -> tuple[Path, Path]:
    """results/cv_*.json (everything) and .md (the tables, the exact command on top)."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    js, md = out.with_suffix(".json"), out.with_suffix(".md")
    preds = dict(results.get("predictions", {}))
    sites = np.array(list(results["folds"]))
    fold = np.array(list(results["folds"].values()), dtype=int)
    sub = held_out_sites(data, sites)
    added = _merge_baseline_rows(preds, cfg, sites, fold, sub)
    for name in added:
        results["rows"][name] = metrics_table(preds[name], sub.targets, sub.igbp, cfg.min_site_obs)
        results["rows"][name]["balance_violation"] = balance_violation(preds[name]["gpp"], preds[name]["reco"],
                                                                       preds[name]["nee"])
    results["site_scores"] = site_report(preds, sub, fold, list(cfg.compare_to), cfg.min_site_obs, seed=cfg.seed)
    unit, step, where = (("datetime64[D]", "day", "daily tower sites") if data.period == "daily" else
                         ("datetime64[M]", "month", "FluxVal sites"))
    payload = {"command": command, "data": cfg.data, "n_sites": len(results["folds"]),
               "rows_from_baseline_predictions": added,
               **{k: v for k, v in results.items() if k != "predictions"}}
    write_text_atomic(js, json.dumps(payload, indent=1, default=float), "CV results")
    if preds:  # the held-out predictions themselves, for diagnostics beyond the tables
        arrays = {f"{row}/{var}": a for row, p in preds.items() for var, a in p.items()  # float64: exact NEE
                  if row not in added}
        with atomic_path(out.with_name(out.name + "_predictions.npz"), "CV predictions") as tmp, \
                open(tmp, "wb") as fh:
            np.savez_compressed(fh, site=np.array(list(results["folds"])),
                                fold=np.array(list(results["folds"].values())),
                                time=data.time.astype(unit).astype(str), **arrays)
    rows = results["rows"]
    grouping = {"site": "site", "forcing_cell": "forcing cell: sites with identical drivers in one fold",
                "colocated": "co-location: towers within 5 km in one fold"}[cfg.group_by]
    made = [results["made_by"], command] if results.get("made_by") else [command]
    lines = [f"# Grouped {cfg.folds}-fold CV on {where} (grouped by {grouping}, stratified by IGBP)", "",
             "Made by:" if len(made) == 1 else "Made by (the CV, then the report rebuilt from its predictions):", "",
             "```", *made, "```", "",
             f"{len(results['folds'])} sites, {data.period}, targets in gC m-2 d-1, NEE = GPP - Reco (uptake "
             f"positive). Pooled metrics over all held-out (site, {step}) pairs; median per-site RMSE over sites with "
             f">= {cfg.min_site_obs} {step}s. Wall time {results['wall_seconds'] / 60:.1f} min. "
             "'(met-only)': the same trained models evaluated with the optional drivers absent (NaN) "
             "(XGBoost: retrained without those features)."
             f" '(cold start)': every calendar {'month' if data.period == 'daily' else 'year'} predicted alone "
             "from a fresh state (no history, zero LSTM state), on the same periods."
             + (f" Rows {added} are from {cfg.baseline_predictions} (same sites and folds)." if added else ""),
             ""]
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
        block = "month" if data.period == "daily" else "year ('(cold month)': each single month)"
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
    lines += site_report_lines(results["site_scores"], counts)
    lines += _igbp_detail(rows, classes, counts)
    lines += ["", "## Cost", "", "| variant | CPU-seconds (sum over folds) | best epochs (members x folds) |",
              "|---|---|---|"]
    for name, v in results["variants"].items():
        be = v["best_epochs"]
        lines.append(f"| {name} | {v['seconds']:.0f} | {f'median {int(np.median(be))}' if be else '-'} |")
    write_text_atomic(md, "\n".join(lines) + "\n", "CV report")
    return md, js
