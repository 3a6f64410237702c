"""Self-describing, safely loadable checkpoints: one ``.npz`` (allow_pickle=False) with a JSON header.

Why not ``torch.save``: a pickle can run code on load; an npz of plain arrays cannot. The JSON header holds the
model config, driver list with units, normalisation statistics, sign convention, period, window and a SHA-256 of
every weight *and of the header itself* (driver order, period, member count or sign convention change the physics
when edited), so that a corrupt or edited file fails loudly on load. Shapes are checked against the header's model
config before anything of that size is allocated (the networks are first built on torch's ``meta`` device).
From format 4 the file also ends with a whole-file SHA-256 seal (``sealed.py``, the zip's comment), checked before
anything is parsed: a flipped byte in a zip or ``.npy`` header is refused too, and every array's declared size is
compared with what its entry holds before anything is allocated. Format 3 (no seal) is refused unless the caller
allows unverified files explicitly; format 2 (whose digest left the header out) always. :func:`upgrade_checkpoint`
re-signs a file the user trusts (``scripts/upgrade_checkpoint.py``).
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import zipfile
import zlib
from pathlib import Path

import numpy as np
import torch

from tamrl_coupler import sealed
from tamrl_coupler.atomicfile import atomic_path
from tamrl_coupler.errors import CheckpointError
from tamrl_coupler.kernels.features import DERIVED_INPUTS
from tamrl_coupler.model.daily_ensemble import ensemble_class
from tamrl_coupler.model.ensemble import Ensemble
from tamrl_coupler.model.features import Driver, FeatureEncoder
from tamrl_coupler.model.meta import EnsembleMeta
from tamrl_coupler.model.networks import build_network
from tamrl_coupler.physics.carbon import SignConvention
from tamrl_coupler.settings import ConfigError, from_dict, to_dict
from tamrl_coupler.settings.model import ModelConfig
from tamrl_coupler.settings.paths import resolve_path

FORMAT = "tamrl-coupler-checkpoint"
# 2: the task encoder sees the completed periods before the current one; derived inputs. 3: the digest covers the
# header too. 4: a whole-file seal
FORMAT_VERSION = 4
UNSEALED_VERSION = 3  # read only when the caller allows unverified files
_META_KEY = "__meta__"


# the checkpoints shipped inside the package, by the name users select them with (``--checkpoint daily``)
CHECKPOINT_NAMES: dict[str, str] = {"daily": "tamrl_daily.npz", "monthly": "tamrl_fluxval_monthly.npz"}


def shipped_checkpoint(name: str) -> Path:
    """The shipped checkpoint called ``name`` (``daily``: daily towers, ``monthly``: the FluxVal monthly model)."""
    if name not in CHECKPOINT_NAMES:
        raise CheckpointError(f"checkpoint name {name!r} is not known; expected one of {sorted(CHECKPOINT_NAMES)} "
                              "or a path to an .npz file")
    path = Path(__file__).resolve().parents[1] / "checkpoints" / CHECKPOINT_NAMES[name]
    if not path.exists():
        raise CheckpointError(f"checkpoint {name!r}: {path.name} is not installed with this package")
    return path


def default_checkpoint_path(period: str = "monthly") -> Path:
    """The shipped checkpoint for data of ``period`` (monthly or daily)."""
    return shipped_checkpoint("daily" if period == "daily" else "monthly")


def resolve_checkpoint(name_or_path: str | Path | None, base: Path | str | None = None,
                       period: str = "monthly") -> Path:
    """A checkpoint as users and configs give it: ``daily`` / ``monthly`` (shipped in the package), a path
    (``package://...``, environment variables, relative to ``base``: a run config's directory), or None for the
    shipped one of ``period``. A name wins over a file of the same name (write ``./daily`` for the file)."""
    if name_or_path is None:
        return default_checkpoint_path(period)
    if isinstance(name_or_path, str) and name_or_path in CHECKPOINT_NAMES:
        return shipped_checkpoint(name_or_path)
    return resolve_path(name_or_path, None if base is None else Path(base))


def _digest(arrays: dict[str, np.ndarray], header: dict | None = None) -> str:
    """SHA-256 of every array (name, dtype, shape, bytes) and, from format 3, of the header (all but the digest)."""
    h = hashlib.sha256()
    for key in sorted(arrays):
        a = np.ascontiguousarray(arrays[key])
        h.update(key.encode())
        h.update(str(a.dtype).encode() + str(a.shape).encode())
        h.update(a.tobytes())
    if header is not None:
        h.update(b"\0header\0")
        h.update(json.dumps({k: v for k, v in header.items() if k != "sha256"}, sort_keys=True,
                            separators=(",", ":")).encode())
    return h.hexdigest()


def _member_arrays(ensemble: Ensemble) -> dict[str, np.ndarray]:
    arrays: dict[str, np.ndarray] = {}
    for m, member in enumerate(ensemble.members):
        for name, tensor in member.state_dict().items():
            arrays[f"member{m}.{name}"] = tensor.detach().cpu().numpy()
    arrays["encoder.mean"] = np.asarray(ensemble.encoder.mean)
    arrays["encoder.std"] = np.asarray(ensemble.encoder.std)
    return arrays


def ensemble_fingerprint(ensemble: Ensemble) -> str:
    """SHA-256 of what makes an ensemble's physics: every weight, the normalisation, the drivers, period, window,
    sign convention and model config. A restart records it, so that it is not continued with another network."""
    meta = ensemble.meta
    return _digest(_member_arrays(ensemble), {
        "model": to_dict(meta.model), "n_members": ensemble.n_members, "drivers": [d.to_dict() for d in meta.drivers],
        "period": meta.period, "window": meta.window,
        "sign_convention": SignConvention.parse(meta.sign_convention).value})


def save_checkpoint(ensemble: Ensemble, path: str | Path) -> Path:
    """Write ``ensemble`` atomically (temporary file + rename)."""
    arrays = _member_arrays(ensemble)
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
    }
    return _write(path, header, arrays)


def _write(path: str | Path, header: dict, arrays: dict[str, np.ndarray]) -> Path:
    """The npz with ``header`` signed over itself and ``arrays``, atomically."""
    header = {**header, "sha256": _digest(arrays, header)}
    payload = {**arrays, _META_KEY: np.frombuffer(json.dumps(header, indent=1).encode(), dtype=np.uint8)}
    with atomic_path(path, "checkpoint") as tmp:
        sealed.save_npz(tmp, payload)
    return Path(path)


def upgrade_checkpoint(src: str | Path, dst: str | Path) -> Path:
    """Re-sign a format-2 or -3 checkpoint as the current format (its digest then covers the header, the file is
    sealed). Only for a file the user trusts: those formats could not show every byte is as written. The digest
    they carry is still checked."""
    src = Path(src)
    header, arrays = _open(src, accept_versions=(2, UNSEALED_VERSION), allow_unverified=True)
    return _write(dst, {**header, "format_version": FORMAT_VERSION}, arrays)


def read_header(path: str | Path) -> dict:
    """Only the JSON header (cheap; for ``--help``-style inspection and checks)."""
    return _open(Path(path))[0]


def _open(path: Path, accept_versions: tuple[int, ...] = (FORMAT_VERSION,),
          allow_unverified: bool = False) -> tuple[dict, dict[str, np.ndarray]]:
    if not path.exists():
        raise CheckpointError(f"checkpoint {path} does not exist (expected one of {sorted(CHECKPOINT_NAMES)}, the "
                              "checkpoints shipped in the package, or the path of an .npz file)")
    if path.is_dir():
        raise CheckpointError(f"checkpoint {path} is a directory, expected an .npz file")
    try:
        seal = sealed.check(path)
        if seal is sealed.Seal.NONE and allow_unverified:
            accept_versions = (*accept_versions, UNSEALED_VERSION)
        _check_declared_size(path)
        with np.load(path, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except (zipfile.BadZipFile, ValueError, OSError, EOFError, KeyError, RuntimeError, zlib.error) as exc:
        raise CheckpointError(f"checkpoint {path} is corrupt or not a tamrl-coupler checkpoint ({exc})") from None
    if _META_KEY not in arrays:
        raise CheckpointError(f"checkpoint {path} has no '{_META_KEY}' header: not a tamrl-coupler checkpoint")
    try:
        header = json.loads(arrays.pop(_META_KEY).tobytes().decode())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"checkpoint {path}: the JSON header is corrupt ({exc})") from None
    if not isinstance(header, dict):
        raise CheckpointError(f"checkpoint {path}: the JSON header is not a mapping")
    if header.get("format") != FORMAT:
        raise CheckpointError(f"checkpoint {path}: format {header.get('format')!r}, expected {FORMAT!r}")
    version = header.get("format_version")
    if seal is sealed.Seal.NONE and isinstance(version, int) and version >= FORMAT_VERSION:
        raise CheckpointError(f"checkpoint {path}: format {version} ends with a SHA-256 seal but this file has none "
                              f"(cut off or edited)")
    if seal is sealed.Seal.NONE and version == UNSEALED_VERSION and version not in accept_versions:
        raise CheckpointError(f"checkpoint {path}: format_version {version} carries no whole-file seal, so an edited "
                              f"byte outside the weights could go unnoticed; it is refused unless you allow "
                              f"unverified files (--allow-unverified, allow_unverified=True) or re-sign a file you "
                              f"trust with scripts/upgrade_checkpoint.py")
    if version not in accept_versions:
        hint = (" (its digest does not cover the header, so an edited driver order, period or sign convention "
                "would go unnoticed: re-sign a file you trust with scripts/upgrade_checkpoint.py)"
                if version == 2 else "")
        raise CheckpointError(f"checkpoint {path}: format_version {version!r} is not supported (this package reads "
                              f"version {FORMAT_VERSION}){hint}")
    if _digest(arrays, header if version >= 3 else None) != header.get("sha256"):
        raise CheckpointError(f"checkpoint {path}: weights and header do not match the header's sha256 (file "
                              f"corrupt or edited)")
    return header, arrays


def _check_declared_size(path: Path) -> None:
    """Every array's declared size against what its entry holds and the machine's memory, before allocating."""
    total, limit = sum(sealed.npz_declared_bytes(path).values()), sealed.memory_limit()
    if limit and total > limit:
        raise CheckpointError(f"checkpoint {path} declares {total / 2**30:.3g} GiB of arrays, more than this "
                              f"machine's memory allows ({limit / 2**30:.3g} GiB): refused before loading")


def n_model_features(encoder: FeatureEncoder, cfg: ModelConfig) -> int:
    """Network input width: encoded drivers plus the derived inputs."""
    return encoder.n_features + sum(DERIVED_INPUTS[d] for d in cfg.derived_inputs)


def load_checkpoint(path: str | Path | None = None, device: str | torch.device = "cpu", *,
                    expect_period: str | None = None, expect_drivers: list[str] | None = None,
                    allow_unverified: bool = False) -> Ensemble:
    """Load an ensemble: a path, a shipped checkpoint's name (``daily``, ``monthly``), or ``None`` for the shipped
    monthly one.

    ``expect_period`` / ``expect_drivers`` let a caller demand what it will feed; a mismatch is a CheckpointError.
    ``allow_unverified``: also load a format-3 file (no whole-file seal), at the caller's explicit request.
    """
    path = resolve_checkpoint(path)
    header, arrays = _open(path, allow_unverified=allow_unverified)
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
    stored = sorted({int(k.split(".", 1)[0][len("member"):]) for k in arrays
                     if k.startswith("member") and k.split(".", 1)[0][len("member"):].isdigit()})
    if n_members < 1 or stored != list(range(n_members)):
        raise CheckpointError(f"checkpoint {path}: the header says {n_members} member(s), the file holds weights for "
                              f"{len(stored)} (an ensemble needs at least one member, numbered from 0)")
    try:
        encoder = FeatureEncoder(drivers, arrays.get("encoder.mean", np.zeros(0)),
                                 arrays.get("encoder.std", np.zeros(0)))
    except (ValueError, TypeError) as exc:
        raise CheckpointError(f"checkpoint {path}: normalisation statistics do not fit the drivers ({exc})") from None
    members = []
    for m in range(n_members):
        prefix = f"member{m}."
        scale = arrays.get(prefix + "target_scale")
        if scale is None:
            raise CheckpointError(f"checkpoint {path}: weights of member {m} are missing ({prefix}target_scale)")
        try:
            with torch.device("meta"):  # shapes from the header's config, before allocating anything that large
                expected = {k: tuple(t.shape) for k, t in
                            build_network(cfg, n_model_features(encoder, cfg), scale).state_dict().items()}
        except (ValueError, TypeError, RuntimeError) as exc:
            raise CheckpointError(f"checkpoint {path}: the model config cannot build a network ({exc})") from None
        for name, shape in expected.items():
            key = prefix + name
            if key not in arrays:
                raise CheckpointError(f"checkpoint {path}: weight '{key}' is missing")
            if arrays[key].shape != shape:
                raise CheckpointError(f"checkpoint {path}: weight '{key}' has shape {arrays[key].shape}, the model "
                                      f"config implies {shape}")
        net = build_network(cfg, n_model_features(encoder, cfg), scale)
        net.load_state_dict({name: torch.from_numpy(np.array(arrays[prefix + name])) for name in expected})
        members.append(net)
    meta = EnsembleMeta(drivers=drivers, period=period, window=window, sign_convention=convention, model=cfg,
                        n_members=n_members, target_units=header.get("target_units", "gC m-2 d-1"),
                        trained_on=header.get("trained_on", ""), created_utc=header.get("created_utc", ""),
                        extra=header.get("extra", {}), calibration=header.get("spread_calibration"))
    return ensemble_class(cfg.kind)(members, encoder, meta, device=device)

