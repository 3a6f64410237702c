"""A checkpoint's identity, as the files made from it state it: its name, digests, format version, when and on what
it was trained, and what its spreads mean (an inversion must know whether its prior uncertainty is a calibrated
predictive standard deviation or the members' disagreement)."""

from __future__ import annotations

import hashlib
from pathlib import Path

from tamrl_coupler.model.calibration import calibrated_meaning
from tamrl_coupler.model.checkpoint import read_header


def file_sha256(path: str | Path) -> str:
    """SHA-256 of the file's bytes (what a user can check with ``sha256sum``)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def spread_meaning(period: str, calibration: dict | None) -> str:
    """What the ensemble's spreads (``*_std``, exported as ``*_spread``) are, from the header's spread calibration
    (the same words as the loaded ensemble's ``spread_meaning``)."""
    if calibration is not None:
        return calibrated_meaning(period, calibration.get("kind") == "site")
    return "standard deviation of the ensemble members (not calibrated against observations)"


def checkpoint_identity(path: str | Path) -> dict[str, str]:
    """Global attributes naming the checkpoint at ``path`` (its header is read and its digest checked)."""
    path = Path(path)
    header = read_header(path)
    period = str(header.get("period", ""))
    return {
        "checkpoint": path.name,
        "checkpoint_file_sha256": file_sha256(path),
        "checkpoint_sha256": str(header.get("sha256", "")),
        "checkpoint_format_version": str(header.get("format_version", "")),
        "checkpoint_created": str(header.get("created_utc", "")),
        "checkpoint_trained_on": str(header.get("trained_on", "")),
        "checkpoint_period": period,
        "spread_meaning": spread_meaning(period, header.get("spread_calibration")),
    }
