"""The model section of the training and CV configs (``model:``): one ensemble member's network; also the header
of every checkpoint."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from tamrl_coupler import vocabulary
from tamrl_coupler.errors import ConfigError


@dataclass
class ModelConfig:
    """Architecture of one ensemble member."""

    # tamrl: BiLSTM task encoder over the last `window` periods' drivers (monthly); tamrl_daily: MLP encoder over
    # the last 12 completed monthly means in calendar slots (daily); lstm: no task encoder
    kind: Literal["tamrl", "lstm", "tamrl_daily"] = "tamrl"
    hidden: int = 48  # forward LSTM width
    encoder_hidden: int = 24  # task-encoder BiLSTM width (per direction)
    embedding: int = 16  # size of the task embedding z
    projection: int = 24  # task-encoder per-step projection
    window: int = 12  # task-encoder window, in periods
    dropout: float = 0.0  # training-time dropout on the forward LSTM's input and output (no effect at inference)
    # the targets the networks predict, one head each, in output order (the vocabulary's targets with a head);
    # the targets derived from them (NEE from GPP and Reco) follow, and are trained on too
    heads: list[str] = field(default_factory=lambda: ["gpp", "reco"])
    nee_mode: Literal["derived", "free"] = "derived"  # free: one more head predicts NEE, tied by a penalty
    optional_drivers: list[str] = field(default_factory=lambda: list(vocabulary.optional_drivers()))
    # inputs the model derives itself from its state (never sent by a host): "month" (sin/cos of the calendar
    # period, from init_state(first_period=...)), "lat" (latitude and day length, from init_state(lat=...))
    derived_inputs: list[str] = field(default_factory=list)

    def validate(self) -> None:
        for key in ("hidden", "encoder_hidden", "embedding", "projection", "window"):
            if getattr(self, key) < 1:
                raise ConfigError(f"{key}: expected a positive integer, got {getattr(self, key)}")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"dropout: expected a number in [0, 1), got {self.dropout}")
        known = (*vocabulary.optional_drivers("monthly"), *vocabulary.optional_drivers("daily"))
        bad = [d for d in self.optional_drivers if d not in known]
        if bad:
            raise ConfigError(f"optional_drivers: unknown driver(s) {bad}; expected some of {sorted(known)}")
        predicted = vocabulary.predicted_targets()
        bad = [t for t in self.heads if t not in predicted]
        if bad or len(set(self.heads)) != len(self.heads) or not {"gpp", "reco"} <= set(self.heads):
            raise ConfigError(f"heads: expected distinct targets with a network head, gpp and reco among them (the "
                              f"carbon fluxes every model predicts), from {list(predicted)}; got {self.heads}")
        bad = [d for d in self.derived_inputs if d not in ("month", "lat", "toa")]
        if bad:
            raise ConfigError(f"derived_inputs: unknown input(s) {bad}; expected some of ['lat', 'month', 'toa']")

    @property
    def n_outputs(self) -> int:
        """Outputs of a member network: one per head, and the free heads of the derived targets ("free")."""
        free = vocabulary.derived_targets(self.heads) if self.nee_mode == "free" else ()
        return len(self.heads) + len(free)
