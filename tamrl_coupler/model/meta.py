"""What a checkpoint says about its ensemble (and what the component needs to know of it)."""

from __future__ import annotations

from dataclasses import dataclass, field

from tamrl_coupler.model.features import Driver
from tamrl_coupler.physics.carbon import SignConvention
from tamrl_coupler.settings.model import ModelConfig


@dataclass
class EnsembleMeta:
    """The drivers in input-column order, the model period and task-encoder window, the NEE convention, the network
    configuration, the members, and what the ensemble was trained and calibrated on."""

    drivers: list[Driver]
    period: str
    window: int
    sign_convention: SignConvention
    model: ModelConfig
    n_members: int
    target_units: str = "gC m-2 d-1"
    trained_on: str = ""
    created_utc: str = ""
    extra: dict = field(default_factory=dict)
    # the spread calibration (model/calibration.py, JSON form) fitted on cross-validation errors; None: the
    # spreads are the member standard deviation
    calibration: dict | None = None

    @property
    def driver_names(self) -> list[str]:
        return [d.name for d in self.drivers]
