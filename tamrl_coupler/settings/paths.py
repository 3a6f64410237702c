"""Paths written in configs: environment variables, files shipped inside the package, relative paths.

``${VAR}``, ``$VAR`` and ``${VAR:-default}`` are expanded shell style; ``package://sample_data/x.nc`` names a file
inside the installed package; a relative path is taken from a base directory (a run config's own directory).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from tamrl_coupler.errors import ConfigError

PACKAGE_SCHEME = "package://"
# where the project's shared data sits when TAMRL_SHARED is not set: beside the repository
DATA_DEFAULTS = {"TAMRL_SHARED": "../shared"}

_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}|\$([A-Za-z_][A-Za-z0-9_]*)")


def expand_env(text: str, defaults: dict[str, str] | None = None) -> str:
    """``${VAR}``, ``$VAR`` and ``${VAR:-default}`` (shell style), e.g. ``${TAMRL_SHARED:-../../shared}``.

    A variable that is not set takes its inline default, else its entry in ``defaults``, else is an error."""
    def sub(m: re.Match) -> str:
        name = m.group(1) or m.group(3)
        value = os.environ.get(name)
        if value is not None:
            return value
        if m.group(2) is not None:
            return m.group(2)
        if defaults and name in defaults:
            return defaults[name]
        raise ConfigError(f"path {text!r}: environment variable {name} is not set")

    return _ENV.sub(sub, text)


def package_root() -> Path:
    """The installed package's directory (files shipped with it: checkpoints, sample data, configs)."""
    return Path(__file__).resolve().parents[1]


def resolve_path(value: str | Path | None, base: Path | None) -> Path | None:
    """``package://rel`` -> inside the installed package; relative -> from ``base`` (the config's directory);
    ``${VAR:-default}`` is expanded first."""
    if value is None:
        return None
    text = expand_env(str(value))
    if text.startswith(PACKAGE_SCHEME):
        return package_root() / text[len(PACKAGE_SCHEME):]
    p = Path(text).expanduser()
    if not p.is_absolute() and base is not None:
        p = base / p
    return p


def data_path(path: str | Path) -> Path:
    """A training or evaluation data path: ``${TAMRL_SHARED}`` defaults to ``../shared``; relative to the
    working directory."""
    return Path(expand_env(str(path), DATA_DEFAULTS)).expanduser()
