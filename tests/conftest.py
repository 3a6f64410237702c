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
