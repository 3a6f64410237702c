"""TAM-RL networks, ensemble, checkpoints and spread calibration (the Model -> component contract:
docs/ARCHITECTURE.md)."""

from tamrl_coupler.devices import resolve_device
from tamrl_coupler.model.checkpoint import default_checkpoint_path, load_checkpoint, read_header, save_checkpoint
from tamrl_coupler.model.ensemble import Ensemble
from tamrl_coupler.model.features import Driver, FeatureEncoder, default_drivers
from tamrl_coupler.model.meta import EnsembleMeta
from tamrl_coupler.model.reduction import Fluxes
from tamrl_coupler.model.state import EnsembleState
from tamrl_coupler.settings.model import ModelConfig

__all__ = [
    "Driver", "Ensemble", "EnsembleMeta", "EnsembleState", "FeatureEncoder",
    "Fluxes", "ModelConfig", "default_checkpoint_path", "default_drivers", "load_checkpoint", "read_header",
    "resolve_device", "save_checkpoint",
]
