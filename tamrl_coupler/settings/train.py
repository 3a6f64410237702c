"""The training config (configs/train/*.yaml): how to train one ensemble."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from tamrl_coupler.errors import ConfigError
from tamrl_coupler.settings.model import ModelConfig


@dataclass
class LossWeights:
    """Weights of the targets in the training loss (a target of the vocabulary not named here weighs 1)."""

    gpp: float = 1.0
    reco: float = 0.5
    nee: float = 1.0

    def weight(self, target: str) -> float:
        return float(getattr(self, target, 1.0))


@dataclass
class TrainConfig:
    """How to train one ensemble. ``data`` is a FluxVal-layout file or a FLUXNET/AmeriFlux file or directory."""

    data: str = ""
    out: str = "tamrl_checkpoint.npz"  # the checkpoint written
    model: ModelConfig = field(default_factory=ModelConfig)
    members: int = 10
    seed: int = 0
    max_epochs: int = 150
    batch_size: int = 32
    crop: int = 72  # training sequence length, periods
    burn_in: int = 12  # periods at a crop's start without loss (LSTM spin-up), unless the crop starts the record
    lr: float = 3.0e-3
    weight_decay: float = 1.0e-4
    patience: int = 20  # early stopping on held-out sites
    min_epochs: int = 0  # never stop (nor keep a "best" epoch) before this many epochs
    val_smoothing: float = 0.0  # early stopping on an exponential moving average of the validation loss (0: raw)
    val_fraction: float = 0.15  # 0: no early stopping, max_epochs with cosine decay, the last weights kept
    input_noise: float = 0.0  # training-time Gaussian noise on continuous drivers, in units of each driver's std
    optional_dropout: float = 0.3  # probability of hiding each optional driver for a whole training sequence
    balance_weight: float = 1.0  # carbon-balance penalty (gC m-2 d-1)^2, only for model.nee_mode = free
    loss_weights: LossWeights = field(default_factory=LossWeights)
    # "standardised": squared errors divided by each target's variance; "physical": in (gC m-2 d-1)^2, as the
    # pooled RMSE that the CV reports weighs them
    loss_units: Literal["standardised", "physical"] = "standardised"
    # "uniform": every training site once per epoch; "by_record": an epoch draws as many crops, sites chosen with
    # probability proportional to their number of target periods (every site-period weighs the same, as in the
    # pooled RMSE, instead of a 2-month record weighing as much as a 14-year one); "by_class" (the daily recipe):
    # sites drawn with probability 1 / (training sites of their IGBP class), every class as often
    site_sampling: Literal["uniform", "by_record", "by_class"] = "uniform"
    # fixed-schedule training (the daily recipe): > 0 trains every member for this many AdamW steps of
    # `batch_size` crops with a one-cycle learning rate, on all sites, and keeps the last weights
    steps: int = 0
    cold_fraction: float = 0.0  # share of crops that start cold: no history before the crop, loss from its first day
    slot_dropout: float = 0.0  # daily model: probability of hiding each monthly history slot for a whole crop
    threads: int = 1
    progress: bool = True

    def validate(self) -> None:
        if self.members < 1:
            raise ConfigError(f"members: expected at least 1, got {self.members}")
        if not 0.0 <= self.val_fraction < 0.9:
            raise ConfigError(f"val_fraction: expected a number in [0, 0.9), got {self.val_fraction}")
        if self.input_noise < 0:
            raise ConfigError(f"input_noise: expected a non-negative number, got {self.input_noise}")
        if not 0.0 <= self.optional_dropout < 1.0:
            raise ConfigError(f"optional_dropout: expected a number in [0, 1), got {self.optional_dropout}")
        if not 0.0 <= self.val_smoothing < 1.0:
            raise ConfigError(f"val_smoothing: expected a number in [0, 1), got {self.val_smoothing}")
        for key in ("cold_fraction", "slot_dropout"):
            if not 0.0 <= getattr(self, key) < 1.0:
                raise ConfigError(f"{key}: expected a number in [0, 1), got {getattr(self, key)}")
        if self.steps < 0:
            raise ConfigError(f"steps: expected 0 (epochs with early stopping) or a positive number, got {self.steps}")
        if self.crop <= self.burn_in:
            raise ConfigError(f"crop: expected more than burn_in ({self.burn_in}), got {self.crop}")
