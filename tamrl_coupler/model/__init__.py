"""TAM-RL model, baselines, ensemble and checkpoints (the Model -> component contract in docs/ARCHITECTURE.md)."""

from tamrl_coupler.config.model import ModelConfig
from tamrl_coupler.devices import resolve_device
from tamrl_coupler.model.checkpoint import default_checkpoint_path, load_checkpoint, read_header, save_checkpoint
from tamrl_coupler.model.ensemble import Ensemble, EnsembleMeta, EnsembleState, Fluxes
from tamrl_coupler.model.features import Driver, FeatureEncoder, default_drivers

__all__ = [
    "Driver", "Ensemble", "EnsembleMeta", "EnsembleState", "FeatureEncoder",
    "Fluxes", "ModelConfig", "default_checkpoint_path", "default_drivers", "load_checkpoint", "read_header",
    "resolve_device", "save_checkpoint",
]
