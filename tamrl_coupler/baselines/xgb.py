"""The gradient-boosted-trees baseline in the FLUXCOM-X-BASE manner: one model per flux, per-period features.

Features per (site, period): each continuous driver now, lagged 1 and 2 periods, its running means over the last 3
and 12 periods and its anomaly from the 12-period mean (the same 12-period history the TAM-RL encoder sees), the
season (sin/cos of the month) and the one-hot land cover. Missing values stay NaN (XGBoost learns a default
direction for them). NEE is predicted by its own model, as FLUXCOM does, so its carbon balance is *not* exact.
"""

from __future__ import annotations

import numpy as np

from tamrl_coupler import vocabulary


def _rolling_mean(x: np.ndarray, k: int) -> np.ndarray:
    """Mean over the last k periods (inclusive) along axis 1, ignoring NaN; NaN when all are missing."""
    s, t = x.shape
    out = np.full_like(x, np.nan)
    for j in range(t):
        win = x[:, max(0, j - k + 1): j + 1]
        cnt = np.isfinite(win).sum(axis=1)
        tot = np.nansum(win, axis=1)
        out[:, j] = np.where(cnt > 0, tot / np.maximum(cnt, 1), np.nan)
    return out


def build_features(x: np.ndarray, names: list[str], time: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """x (S, T, D) physical drivers -> features (S, T, K) and their names."""
    feats, fnames = [], []
    for j, name in enumerate(names):
        col = x[:, :, j].astype(np.float64)
        classes = vocabulary.DRIVERS[name].classes
        if classes:  # categorical: one-hot
            for c, cls in enumerate(classes):
                feats.append(np.where(np.isfinite(col), (col == c).astype(float), np.nan))
                fnames.append(f"{name}_{cls}")
            continue
        lag1 = np.concatenate([np.full((col.shape[0], 1), np.nan), col[:, :-1]], axis=1)
        lag2 = np.concatenate([np.full((col.shape[0], 2), np.nan), col[:, :-2]], axis=1)
        m3, m12 = _rolling_mean(col, 3), _rolling_mean(col, 12)
        feats += [col, lag1, lag2, m3, m12, col - m12]
        fnames += [name, f"{name}_lag1", f"{name}_lag2", f"{name}_mean3", f"{name}_mean12", f"{name}_anom12"]
    month = (time.astype("datetime64[M]").astype(int) % 12).astype(float)
    feats += [np.broadcast_to(np.sin(2 * np.pi * month / 12), x.shape[:2]),
              np.broadcast_to(np.cos(2 * np.pi * month / 12), x.shape[:2])]
    fnames += ["month_sin", "month_cos"]
    return np.stack(feats, axis=-1).astype(np.float32), fnames


def _trailing_mean(col: np.ndarray, k: int) -> np.ndarray:
    """Mean over the last k days (inclusive) along axis 1, ignoring NaN (cumulative sums: O(T))."""
    ok = np.isfinite(col)
    cs = np.concatenate([np.zeros((col.shape[0], 1)), np.cumsum(np.where(ok, col, 0.0), axis=1)], axis=1)
    cn = np.concatenate([np.zeros((col.shape[0], 1)), np.cumsum(ok, axis=1)], axis=1)
    hi = np.arange(1, col.shape[1] + 1)
    lo = np.maximum(hi - k, 0)
    n = cn[:, hi] - cn[:, lo]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, (cs[:, hi] - cs[:, lo]) / np.maximum(n, 1), np.nan)


def build_daily_features(x: np.ndarray, names: list[str], time: np.ndarray, lat: np.ndarray
                         ) -> tuple[np.ndarray, list[str]]:
    """The daily FLUXCOM-X manner: each continuous driver today and its trailing 7- and 30-day means, the day of
    year (sin/cos), latitude and the one-hot land cover. x (S, T, D) -> (S, T, K), names."""
    feats, fnames = [], []
    for j, name in enumerate(names):
        col = x[:, :, j].astype(np.float64)
        classes = vocabulary.DRIVERS[name].classes
        if classes:
            for c, cls in enumerate(classes):
                feats.append(np.where(np.isfinite(col), (col == c).astype(float), np.nan))
                fnames.append(f"{name}_{cls}")
            continue
        feats += [col, _trailing_mean(col, 7), _trailing_mean(col, 30)]
        fnames += [name, f"{name}_mean7", f"{name}_mean30"]
    day = time.astype("datetime64[D]")
    doy = (day - day.astype("datetime64[Y]")).astype(np.int64).astype(float)
    feats += [np.broadcast_to(np.sin(2 * np.pi * doy / 365.25), x.shape[:2]),
              np.broadcast_to(np.cos(2 * np.pi * doy / 365.25), x.shape[:2]),
              np.broadcast_to(np.asarray(lat, dtype=float)[:, None], x.shape[:2])]
    fnames += ["doy_sin", "doy_cos", "lat"]
    return np.stack(feats, axis=-1).astype(np.float32), fnames


class XGBoostFluxModel:
    """Three XGBoost regressors (GPP, Reco, NEE), trained on the periods with targets."""

    def __init__(self, n_estimators: int = 400, max_depth: int = 6, learning_rate: float = 0.05,
                 subsample: float = 0.8, colsample_bytree: float = 0.8, min_child_weight: float = 5.0, seed: int = 0,
                 n_jobs: int = 1):
        # the native API: no scikit-learn needed
        self.rounds = n_estimators
        self.params = dict(max_depth=max_depth, eta=learning_rate, subsample=subsample,
                           colsample_bytree=colsample_bytree, min_child_weight=min_child_weight, seed=seed,
                           nthread=n_jobs, tree_method="hist", objective="reg:squarederror")
        self.models: dict = {}

    def fit(self, feats: np.ndarray, targets: dict[str, np.ndarray]) -> XGBoostFluxModel:
        import xgboost as xgb

        f = feats.reshape(-1, feats.shape[-1])
        for name in vocabulary.TARGETS:
            y = targets[name].reshape(-1)
            ok = np.isfinite(y)
            self.models[name] = xgb.train(self.params, xgb.DMatrix(f[ok], label=y[ok]), self.rounds)
        return self

    def predict(self, feats: np.ndarray) -> dict[str, np.ndarray]:
        import xgboost as xgb

        d = xgb.DMatrix(feats.reshape(-1, feats.shape[-1]))
        return {k: m.predict(d).reshape(feats.shape[:2]).astype(np.float64) for k, m in self.models.items()}
