"""The cross-validation config (configs/cv/*.yaml): every variant on the same grouped folds."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from tamrl_coupler.errors import ConfigError
from tamrl_coupler.settings.model import ModelConfig
from tamrl_coupler.settings.train import TrainConfig


@dataclass
class XGBoostConfig:
    """The XGBoost baseline's hyperparameters (FLUXCOM-X-BASE-like)."""

    n_estimators: int = 400
    max_depth: int = 6
    learning_rate: float = 0.05
    subsample: float = 0.8
    colsample_bytree: float = 0.8
    min_child_weight: float = 5.0


@dataclass
class Variant:
    """One row family of the CV table."""

    name: str
    kind: Literal["tamrl", "lstm", "xgboost", "tamrl_daily"]
    model: ModelConfig | None = None  # for tamrl / lstm; defaults to the train section's model
    members: int | None = None
    balance_weight: float | None = None
    train: dict[str, int | float | str] = field(default_factory=dict)  # overrides of train keys (lr, min_epochs...)


@dataclass
class CVConfig:
    """Grouped, IGBP-stratified k-fold CV over sites, every variant on the same splits."""

    train: TrainConfig
    variants: list[Variant]
    data: str = ""
    folds: int = 5
    seed: int = 0
    output: str = "results/cv_fluxval"
    xgboost: XGBoostConfig = field(default_factory=XGBoostConfig)
    # "site": each site in one fold; "forcing_cell": sites with identical drivers (one 0.5-degree cell) in one fold;
    # "colocated": towers within 5 km of each other (treatment pairs, chronosequences) in one fold
    group_by: Literal["site", "forcing_cell", "colocated"] = "site"
    period: Literal["monthly", "daily"] = "monthly"  # daily: daily tower files, the daily recipe (training/daily.py)
    min_site_obs: int = 6  # sites with fewer target periods are left out of the median per-site RMSE

    def validate(self) -> None:
        if self.folds < 2:
            raise ConfigError(f"folds: expected at least 2, got {self.folds}")
        for i, v in enumerate(self.variants):
            bad = [k for k in v.train if k not in TrainConfig.__dataclass_fields__ or k in ("model", "loss_weights")]
            if bad:
                raise ConfigError(f"variants[{i}].train: unknown or nested key(s) {bad}")
        names = [v.name for v in self.variants]
        if len(set(names)) != len(names):
            raise ConfigError(f"variants: names must be unique, got {names}")
