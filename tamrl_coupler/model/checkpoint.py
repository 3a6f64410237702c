"""Self-describing, safely loadable checkpoints: one ``.npz`` (allow_pickle=False) with a JSON header.

Why not ``torch.save``: a pickle can run code on load; an npz of plain arrays cannot. The JSON header holds the
model config, driver list with units, normalisation statistics, sign convention, period, window and a SHA-256 of
every weight, so that a corrupt file or one that does not match its own description fails loudly on load.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import zipfile
from pathlib import Path

import numpy as np
import torch

from tamrl_coupler.config import ConfigError, from_dict, to_dict
from tamrl_coupler.config.model import ModelConfig
from tamrl_coupler.errors import CheckpointError
from tamrl_coupler.model.daily_ensemble import ensemble_class
from tamrl_coupler.model.ensemble import Ensemble, EnsembleMeta
from tamrl_coupler.model.features import DERIVED_INPUTS, Driver, FeatureEncoder
from tamrl_coupler.model.networks import build_network
from tamrl_coupler.physics.carbon import SignConvention

FORMAT = "tamrl-coupler-checkpoint"
FORMAT_VERSION = 2  # 2: the task encoder sees the completed periods before the current one; derived inputs
_META_KEY = "__meta__"


def default_checkpoint_path() -> Path:
    """The pretrained ensemble shipped inside the package."""
    return Path(__file__).resolve().parents[1] / "checkpoints" / "tamrl_fluxval_monthly.npz"


def _digest(arrays: dict[str, np.ndarray]) -> str:
    h = hashlib.sha256()
    for key in sorted(arrays):
        a = np.ascontiguousarray(arrays[key])
        h.update(key.encode())
        h.update(str(a.dtype).encode() + str(a.shape).encode())
        h.update(a.tobytes())
    return h.hexdigest()


def save_checkpoint(ensemble: Ensemble, path: str | Path) -> Path:
    """Write ``ensemble`` atomically (temporary file + rename)."""
    path = Path(path)
    arrays: dict[str, np.ndarray] = {}
    for m, member in enumerate(ensemble.members):
        for name, tensor in member.state_dict().items():
            arrays[f"member{m}.{name}"] = tensor.detach().cpu().numpy()
    arrays["encoder.mean"] = ensemble.encoder.mean
    arrays["encoder.std"] = ensemble.encoder.std
    meta = ensemble.meta
    header = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "model": to_dict(meta.model),
        "n_members": ensemble.n_members,
        "drivers": [d.to_dict() for d in meta.drivers],
        "period": meta.period,
        "window": meta.window,
        "sign_convention": SignConvention.parse(meta.sign_convention).value,
        "nee_formula": SignConvention.parse(meta.sign_convention).formula,
        "target_units": meta.target_units,
        "normalisation": {"mean": ensemble.encoder.mean.tolist(), "std": ensemble.encoder.std.tolist(),
                          "transforms": {"precip": "log1p"}},
        "trained_on": meta.trained_on,
        "created_utc": meta.created_utc or _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "extra": meta.extra,
        "spread_calibration": meta.calibration,
        "sha256": _digest(arrays),
    }
    arrays[_META_KEY] = np.frombuffer(json.dumps(header, indent=1).encode(), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with open(tmp, "wb") as fh:
        np.savez_compressed(fh, **arrays)
    os.replace(tmp, path)
    return path


def read_header(path: str | Path) -> dict:
    """Only the JSON header (cheap; for ``--help``-style inspection and checks)."""
    return _open(Path(path))[0]


def _open(path: Path) -> tuple[dict, dict[str, np.ndarray]]:
    if not path.exists():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except (zipfile.BadZipFile, ValueError, OSError, EOFError, KeyError) as exc:
        raise CheckpointError(f"checkpoint {path} is corrupt or not a tamrl-coupler checkpoint ({exc})") from None
    if _META_KEY not in arrays:
        raise CheckpointError(f"checkpoint {path} has no '{_META_KEY}' header: not a tamrl-coupler checkpoint")
    try:
        header = json.loads(arrays.pop(_META_KEY).tobytes().decode())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"checkpoint {path}: the JSON header is corrupt ({exc})") from None
    if header.get("format") != FORMAT:
        raise CheckpointError(f"checkpoint {path}: format {header.get('format')!r}, expected {FORMAT!r}")
    if header.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"checkpoint {path}: format_version {header.get('format_version')!r} is not supported "
                              f"(this package reads version {FORMAT_VERSION})")
    if _digest(arrays) != header.get("sha256"):
        raise CheckpointError(f"checkpoint {path}: weights do not match the header's sha256 (file corrupt or edited)")
    return header, arrays


def n_model_features(encoder: FeatureEncoder, cfg: ModelConfig) -> int:
    """Network input width: encoded drivers plus the derived inputs."""
    return encoder.n_features + sum(DERIVED_INPUTS[d] for d in cfg.derived_inputs)


def load_checkpoint(path: str | Path | None = None, device: str | torch.device = "cpu", *,
                    expect_period: str | None = None, expect_drivers: list[str] | None = None) -> Ensemble:
    """Load an ensemble; ``None`` loads the one shipped in the package.

    ``expect_period`` / ``expect_drivers`` let a caller demand what it will feed; a mismatch is a CheckpointError.
    """
    path = default_checkpoint_path() if path is None else Path(path)
    header, arrays = _open(path)
    try:
        cfg = from_dict(ModelConfig, header["model"], "model")
        drivers = [Driver(d["name"], d["units"], bool(d["required"])) for d in header["drivers"]]
        n_members = int(header["n_members"])
        period, window = str(header["period"]), int(header["window"])
        convention = SignConvention.parse(header["sign_convention"])
    except (KeyError, TypeError, ValueError, ConfigError) as exc:
        raise CheckpointError(f"checkpoint {path}: header is incomplete or invalid ({exc})") from None
    if expect_period is not None and expect_period != period:
        raise CheckpointError(f"checkpoint {path}: trained for period {period!r}, but {expect_period!r} was requested")
    if expect_drivers is not None and list(expect_drivers) != [d.name for d in drivers]:
        raise CheckpointError(f"checkpoint {path}: drivers {[d.name for d in drivers]} do not match the expected "
                              f"{list(expect_drivers)}")
    if window != cfg.window:
        raise CheckpointError(f"checkpoint {path}: header window {window} != model.window {cfg.window}")
    encoder = FeatureEncoder(drivers, arrays.get("encoder.mean", np.zeros(0)), arrays.get("encoder.std", np.zeros(0)))
    members = []
    for m in range(n_members):
        prefix = f"member{m}."
        scale = arrays.get(prefix + "target_scale")
        if scale is None:
            raise CheckpointError(f"checkpoint {path}: weights of member {m} are missing ({prefix}target_scale)")
        net = build_network(cfg, n_model_features(encoder, cfg), scale)
        expected = net.state_dict()
        for name, tensor in expected.items():
            key = prefix + name
            if key not in arrays:
                raise CheckpointError(f"checkpoint {path}: weight '{key}' is missing")
            if arrays[key].shape != tuple(tensor.shape):
                raise CheckpointError(f"checkpoint {path}: weight '{key}' has shape {arrays[key].shape}, the model "
                                      f"config implies {tuple(tensor.shape)}")
        net.load_state_dict({name: torch.from_numpy(np.array(arrays[prefix + name])) for name in expected})
        members.append(net)
    meta = EnsembleMeta(drivers=drivers, period=period, window=window, sign_convention=convention, model=cfg,
                        n_members=n_members, target_units=header.get("target_units", "gC m-2 d-1"),
                        trained_on=header.get("trained_on", ""), created_utc=header.get("created_utc", ""),
                        extra=header.get("extra", {}), calibration=header.get("spread_calibration"))
    return ensemble_class(cfg.kind)(members, encoder, meta, device=device)

