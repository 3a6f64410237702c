"""Shared fixtures: the repository's own files, where the real data in ../shared lives, and a skip with a reason
when it is absent. Tests sit in one folder per package of tamrl_coupler (tests/<package>/), with unique file names."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("TAMRL_SHARED", REPO.parent / "shared"))
DEMO = REPO / "tamrl_coupler" / "sample_data" / "demo_forcing.nc"  # the demo forcing shipped in the package
DEMO_CONFIG = REPO / "configs" / "run" / "demo.yaml"
SAMPLE = REPO / "tamrl_coupler" / "sample_data" / "fluxval_sample.nc"  # the FluxVal sample shipped in the package


def shared_path(relative: str) -> Path:
    """Path of a file under ../shared; skips the calling test with a reason when it is not there."""
    path = SHARED / relative
    if not path.exists():
        pytest.skip(f"needs {path} (the project's shared data, not on users' machines; set TAMRL_SHARED to the "
                    "folder that holds data/ to run it)")
    return path


def require_tools(*tools: str) -> None:
    """Skip when a system tool is missing on a user's machine; fail under CI, where scripts/install.sh provides it
    (a skip there would hide a broken install)."""
    import shutil

    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        message = f"needs {missing} on PATH (installed by scripts/install.sh)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture(scope="session")
def shared():
    """``shared(relative)`` -> path under ../shared, or a skip with the reason (usable from module fixtures)."""
    return shared_path


def small_daily_checkpoint(path: Path, seed: int = 0) -> Path:
    """A small daily TAM-RL ensemble (3 members, random weights with non-trivial modulation, a spread
    calibration): for tests of the machinery around the daily model, not of its skill."""
    import numpy as np
    import torch

    from tamrl_coupler.model.calibration import SpreadCalibration
    from tamrl_coupler.model.checkpoint import n_model_features, save_checkpoint
    from tamrl_coupler.model.daily_ensemble import DailyEnsemble
    from tamrl_coupler.model.features import FeatureEncoder, default_drivers
    from tamrl_coupler.model.meta import EnsembleMeta
    from tamrl_coupler.model.networks import build_network
    from tamrl_coupler.physics.carbon import SignConvention
    from tamrl_coupler.settings.model import ModelConfig
    from tamrl_coupler.vocabulary import IGBP_CLASSES

    drivers = default_drivers(period="daily")
    x = np.random.default_rng(seed).normal(size=(50, 40, len(drivers))) * 3 + 5
    cfg = ModelConfig(kind="tamrl_daily", hidden=16, encoder_hidden=16, embedding=8, window=12,
                      derived_inputs=["month", "lat", "toa"],
                      optional_drivers=[d.name for d in drivers if not d.required])
    encoder = FeatureEncoder.fit(drivers, x)
    torch.manual_seed(seed)
    members = [build_network(cfg, n_model_features(encoder, cfg), (4.0, 3.0)) for _ in range(3)]
    for m in members:
        for p in m.parameters():
            torch.nn.init.normal_(p, std=0.2)
    coef = {v: np.r_[-1.0, 0.3, 0.2, np.zeros(len(IGBP_CLASSES))] for v in ("gpp", "reco", "nee")}
    meta = EnsembleMeta(drivers=drivers, period="daily", window=12, sign_convention=SignConvention.UPTAKE_POSITIVE,
                        model=cfg, n_members=3, calibration=SpreadCalibration(coef, "test").to_dict())
    return save_checkpoint(DailyEnsemble(members, encoder, meta), path)
