"""Rows addressed by name: one contiguous (k, n) float64 block for the regridders and MPI exchanges, and a named
view per row for the code, so that nothing is addressed by position (``rows["gpp"]``, never ``rows[0]``)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np

from tamrl_coupler.errors import InputError


class NamedRows:
    """``rows.array`` is the (len(names), n) block; ``rows[name]`` is a view of one row."""

    def __init__(self, names: Iterable[str], n: int, array: np.ndarray | None = None):
        """``array``: an existing (len(names), n) float64 block to name (e.g. one a device writes into)."""
        self.names = tuple(names)
        self.array = np.zeros((len(self.names), n)) if array is None else array
        if self.array.shape != (len(self.names), n) or self.array.dtype != np.float64:
            raise ValueError(f"named rows {self.names}: expected a float64 ({len(self.names)}, {n}) block, got "
                             f"{self.array.dtype} {self.array.shape}")
        self._views = dict(zip(self.names, self.array, strict=True))

    def __getitem__(self, name: str) -> np.ndarray:
        return self._views[name]

    def __contains__(self, name: object) -> bool:
        return name in self._views

    def __iter__(self) -> Iterator[str]:
        return iter(self.names)

    def __len__(self) -> int:
        return len(self.names)

    def items(self) -> Iterator[tuple[str, np.ndarray]]:
        return iter(self._views.items())


def check_one_name(kind: str, name: str, short: str, given: dict[str, str]) -> None:
    """A host registers each quantity under one name: ``name`` (meaning ``short``) is refused when ``short`` was
    registered under another name (``given``: quantity -> name used), naming both."""
    if short in given and given[short] != name:
        raise InputError(f"{kind} field '{name}' is '{short}', already registered as '{given[short]}': the same "
                         "quantity twice; register it once, under one of its names")
