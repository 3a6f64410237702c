"""Grouped k-fold cross-validation over sites, stratified by IGBP class, every variant on the same splits.

Each (variant, fold) job trains on the other folds' sites only (early stopping on sites held out *within* them)
and predicts the fold's sites over their whole record; predictions are then scored together ("pooled").
Jobs run in a process pool (``workers``), each single-threaded, so the CV fits a small shared machine.
"""

from __future__ import annotations

import copy
import time
from concurrent.futures import ProcessPoolExecutor

import numpy as np

from tamrl_coupler import vocabulary
from tamrl_coupler.data.dataset import FluxDataset
from tamrl_coupler.errors import InputError
from tamrl_coupler.settings.cv import CVConfig
from tamrl_coupler.training.metrics import balance_violation, metrics_table


def forcing_cell_groups(data: FluxDataset) -> np.ndarray:
    """Group index per site: sites whose required drivers are identical over the whole record share a forcing cell
    (FluxVal drivers come from the tower's 0.5-degree cell, so nearby towers get the very same inputs)."""
    x = data.driver_array(list(vocabulary.required_drivers()))
    keys: dict[bytes, int] = {}
    return np.array([keys.setdefault(np.nan_to_num(x[s], nan=-9999.0).tobytes(), len(keys))
                     for s in range(data.n_sites)])


def colocated_groups(data: FluxDataset, km: float = 5.0) -> np.ndarray:
    """Group index per site: towers within ``km`` of each other (great-circle, from the sites' lat/lon) are joined,
    transitively (treatment pairs and chronosequences share climate and often drivers)."""
    lat, lon = np.deg2rad(data.lat), np.deg2rad(data.lon)
    if not (np.isfinite(lat).all() and np.isfinite(lon).all()):
        bad = data.sites[~(np.isfinite(lat) & np.isfinite(lon))][:5].tolist()
        raise InputError(f"{data.source}: group_by colocated needs every site's lat/lon; missing for {bad}")
    a = (np.sin((lat[:, None] - lat[None]) / 2) ** 2
         + np.cos(lat[:, None]) * np.cos(lat[None]) * np.sin((lon[:, None] - lon[None]) / 2) ** 2)
    near = 2 * 6371.0 * np.arcsin(np.sqrt(np.clip(a, 0, 1))) < km
    group = np.arange(data.n_sites)
    changed = True
    while changed:  # propagate the smallest index through chains of neighbours
        new = np.where(near, group[None, :], data.n_sites).min(axis=1)
        changed = bool((new != group).any())
        group = new
    return group


def stratified_group_folds(igbp: np.ndarray, n_folds: int, seed: int, groups: np.ndarray | None = None) -> np.ndarray:
    """Fold index per site, every group of sites in one fold, every fold with its share of every IGBP class.

    Groups are single sites by default: the sites of each class are shuffled and dealt round-robin, continuing
    across classes (folds differ in size by at most one site). With ``groups`` (e.g. :func:`forcing_cell_groups`)
    each group takes its most common class, and the shuffled groups of each class go to the fold with the fewest
    sites so far, so that no model is scored on a site whose inputs it saw in training under another name.
    """
    rng = np.random.default_rng(seed)
    fold = np.empty(len(igbp), dtype=int)
    if groups is None or len(set(groups.tolist())) == len(groups):
        k = 0
        for cls in sorted(set(igbp.tolist())):
            for s in rng.permutation(np.flatnonzero(igbp == cls)):
                fold[s] = k % n_folds
                k += 1
        return fold
    ids = sorted(set(groups.tolist()))
    members = {g: np.flatnonzero(groups == g) for g in ids}
    klass = {g: max(sorted(set(igbp[m].tolist())), key=lambda c, m=m: int((igbp[m] == c).sum()))
             for g, m in members.items()}
    size = np.zeros(n_folds, dtype=int)
    for cls in sorted(set(klass.values())):
        cls_groups = [g for g in ids if klass[g] == cls]
        in_cls = np.zeros(n_folds, dtype=int)
        for j in rng.permutation(len(cls_groups)):
            g = cls_groups[j]
            k = min(range(n_folds), key=lambda f: (in_cls[f], size[f]))  # fewest of this class, then fewest sites
            fold[members[g]] = k
            size[k] += len(members[g])
            in_cls[k] += len(members[g])
    return fold


def cold_warm_ratio(cold: dict[str, np.ndarray], warm: dict[str, np.ndarray], obs: dict[str, np.ndarray]
                    ) -> dict[str, float]:
    """Pooled RMSE from a cold start over RMSE with full history, per flux, on the observations both predict."""
    out = {}
    for v in ("gpp", "reco", "nee"):
        ok = np.isfinite(cold[v]) & np.isfinite(warm[v]) & np.isfinite(obs[v])
        out[v] = float(np.sqrt(np.mean((cold[v][ok] - obs[v][ok]) ** 2) / np.mean((warm[v][ok] - obs[v][ok]) ** 2)))
    return out


def _met_only(x: np.ndarray, drivers) -> np.ndarray:
    x = x.copy()
    for j, d in enumerate(drivers):
        if not d.required:
            x[..., j] = np.nan
    return x


def _run_job(args) -> dict:
    """One variant on one fold -> predictions for the fold's sites (runs in a worker process)."""
    import torch

    cfg, variant, data, train_idx, test_idx = args
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    train, test = data.subset(train_idx), data.subset(test_idx)
    out: dict = {"variant": variant.name, "test_idx": test_idx, "preds": {}}
    daily = data.period == "daily"
    if variant.kind == "xgboost":
        from tamrl_coupler.baselines.xgb import XGBoostFluxModel, build_daily_features, build_features
        from tamrl_coupler.model.features import default_drivers

        def feats(part: FluxDataset, names: list[str]) -> np.ndarray:
            if daily:
                return build_daily_features(part.driver_array(names), names, data.time, part.lat)[0]
            return build_features(part.driver_array(names), names, data.time)[0]

        for tag, optional in (("", vocabulary.optional_drivers(data.period)), ("met-only", ())):
            names = [d.name for d in default_drivers(optional, data.period)]
            ftr, fte = feats(train, names), feats(test, names)
            model = XGBoostFluxModel(**vars(cfg.xgboost), seed=cfg.seed).fit(ftr, train.targets)
            p = model.predict(fte)
            out["preds"][tag] = {"gpp": p["gpp"], "reco": p["reco"], "nee": p["nee"]}
    else:
        from tamrl_coupler.model.inference import predict_cold_starts, predict_drivers
        from tamrl_coupler.training.daily import train_daily_ensemble
        from tamrl_coupler.training.loop import train_ensemble

        tc = copy.deepcopy(cfg.train)
        tc.progress = False
        tc.seed = cfg.seed
        tc.model = copy.deepcopy(variant.model or tc.model)
        tc.model.kind = variant.kind
        if variant.members is not None:
            tc.members = variant.members
        if variant.balance_weight is not None:
            tc.balance_weight = variant.balance_weight
        for key, value in variant.train.items():
            setattr(tc, key, type(getattr(tc, key))(value))
        ens, hist = (train_daily_ensemble if daily else train_ensemble)(tc, train)
        names = ens.meta.driver_names
        x = test.driver_array(names)
        for tag, xin in (("", x), ("met-only", _met_only(x, ens.meta.drivers))):
            f = predict_drivers(ens, xin, test.time[0], test.lat)
            pred = {"gpp": f["gpp"], "reco": f["reco"], "nee": f["nee"], "nee_std": f["nee_std"]}
            if "nee_free" in f:
                pred["nee"] = f["nee_free"]  # free variants are scored (and checked) on their own NEE head
            out["preds"][tag] = pred
        # the same periods, each month (daily data) or year (monthly data) from a cold start
        f = predict_cold_starts(ens, test)
        out["preds"]["cold start"] = {k: f[k] for k in ("gpp", "reco", "nee", "nee_std")}
        out["best_epochs"] = [h.best_epoch for h in hist]
    out["seconds"] = time.perf_counter() - t0
    return out


def run_cv(cfg: CVConfig, data: FluxDataset, progress: bool = True, workers: int = 2) -> dict:
    """Run every variant on every fold; returns the results dict (metrics, violations, timings, folds)."""
    from tqdm.auto import tqdm

    sites = np.flatnonzero(np.isfinite(data.targets["gpp"]).any(axis=1))
    data = data.subset(sites)
    grouping = {"forcing_cell": forcing_cell_groups, "colocated": colocated_groups}.get(cfg.group_by)
    groups = grouping(data) if grouping else None
    fold = stratified_group_folds(data.igbp, cfg.folds, cfg.seed, groups)
    jobs = []
    for variant in cfg.variants:
        for k in range(cfg.folds):
            jobs.append((cfg, variant, data, np.flatnonzero(fold != k), np.flatnonzero(fold == k)))
    # the slowest jobs first, so that the pool drains evenly
    jobs.sort(key=lambda j: {"xgboost": 2, "lstm": 1}.get(j[1].kind, 0))
    shape = (data.n_sites, len(data.time))
    preds: dict[str, dict[str, np.ndarray]] = {}
    info: dict[str, dict] = {v.name: {"seconds": 0.0, "best_epochs": []} for v in cfg.variants}
    t0 = time.perf_counter()
    with ProcessPoolExecutor(max_workers=workers) as pool:
        for res in tqdm(pool.map(_run_job, jobs), total=len(jobs), desc="cv", disable=not progress):
            info[res["variant"]]["seconds"] += res["seconds"]
            info[res["variant"]]["best_epochs"] += res.get("best_epochs", [])
            for tag, p in res["preds"].items():
                name = f"{res['variant']} ({tag})" if tag else res["variant"]
                dst = preds.setdefault(name, {k: np.full(shape, np.nan) for k in p})
                for k, v in p.items():
                    dst[k][res["test_idx"]] = v
    results = {"folds": {str(s): int(f) for s, f in zip(data.sites, fold, strict=True)}, "rows": {},
               "wall_seconds": time.perf_counter() - t0, "variants": {}}
    for v in cfg.variants:
        results["variants"][v.name] = {"kind": v.kind, "seconds": info[v.name]["seconds"],
                                       "best_epochs": info[v.name]["best_epochs"]}
    for name, p in preds.items():
        table = metrics_table(p, data.targets, data.igbp, cfg.min_site_obs)
        table["balance_violation"] = balance_violation(p["gpp"], p["reco"], p["nee"])
        results["rows"][name] = table
    results["cold_warm"] = {name: cold_warm_ratio(preds[f"{name} (cold start)"], preds[name], data.targets)
                            for name in preds if f"{name} (cold start)" in preds}
    results["predictions"] = preds  # (site, time) arrays per row; written to an .npz beside the tables
    return results
