"""The model's outputs, named through the vocabulary's targets: which targets the member networks predict (one head
each), which are derived from those (NEE from GPP and Reco), and the names and order of everything made from them
-- the network outputs, the training targets, the period estimate rows, the fluxes.

Why one place: the order of these rows used to be written out by position in the kernels, the ensemble and the
training code (``est[2:5]``, ``y[..., 2]``); now each is asked for by name here, and adding a target (ET, say) is
its vocabulary entry (a target with a head, an export that carries it) and its name in the model config's
``heads``.
"""

from __future__ import annotations

from dataclasses import dataclass

from tamrl_coupler import vocabulary
from tamrl_coupler.errors import CheckpointError
from tamrl_coupler.settings.model import ModelConfig


def spread_name(target: str) -> str:
    """The row of a target's spread (the exports' ``carries``: ``gpp_std``)."""
    return f"{target}_std"


def free_name(target: str) -> str:
    """The row of a derived target's own unconstrained head, in "free" variants (``nee_free``)."""
    return f"{target}_free"


@dataclass(frozen=True)
class Outputs:
    """The output layout of an ensemble; see the module docstring.

    ``predicted``: targets with a network head, in output order (non-negative heads); ``derived``: (target, a, b)
    with target = a - b in the uptake-positive convention (the balance; physics/carbon.py), whose spread is the
    members' spread of a - b; ``free``: derived targets that also have an unconstrained head of their own, after
    the predicted ones ("free" variants)."""

    predicted: tuple[str, ...]
    derived: tuple[tuple[str, str, str], ...]
    free: tuple[str, ...] = ()

    @classmethod
    def of(cls, cfg: ModelConfig) -> Outputs:
        """The layout of members built from ``cfg`` (its ``heads`` and ``nee_mode``) under the vocabulary."""
        derived = []
        for t in vocabulary.derived_targets(cfg.heads):
            parts = vocabulary.TARGETS[t].derived_from
            if len(parts) != 2:
                raise CheckpointError(f"target {t!r} is derived from {list(parts)}: the model derives only balances "
                                      "of two predicted targets (NEE = GPP - Reco)")
            derived.append((t, *parts))
        free = tuple(t for t, _, _ in derived) if cfg.nee_mode == "free" else ()
        return cls(tuple(cfg.heads), tuple(derived), free)

    # ------------------------------------------------------------------ the network
    @property
    def heads(self) -> tuple[str, ...]:
        """The network outputs in order: the predicted targets, then the free heads."""
        return self.predicted + tuple(free_name(t) for t in self.free)

    def head(self, name: str) -> int:
        """The network output of ``name`` (a predicted target or a free head)."""
        return self.heads.index(name)

    @property
    def differences(self) -> tuple[tuple[int, int], ...]:
        """(a, b) head indices of each derived target, for the kernels' spread of a - b."""
        return tuple((self.head(a), self.head(b)) for _, a, b in self.derived)

    # ------------------------------------------------------------------ training
    @property
    def targets(self) -> tuple[str, ...]:
        """Every target the model is trained on and predicts a mean for, in the vocabulary's order."""
        have = set(self.predicted) | {t for t, _, _ in self.derived}
        return tuple(t for t in vocabulary.TARGETS if t in have)

    # ------------------------------------------------------------------ the period estimate and the fluxes
    @property
    def spread_targets(self) -> tuple[str, ...]:
        """The targets with a spread row, in the kernels' order: the predicted ones, then the derived ones."""
        return self.predicted + tuple(t for t, _, _ in self.derived)

    @property
    def rows(self) -> tuple[str, ...]:
        """The period estimate the component keeps (float64 rows, in the kernels' order): the predicted targets'
        means, then every spread."""
        return self.predicted + tuple(spread_name(t) for t in self.spread_targets)

    @property
    def all_rows(self) -> tuple[str, ...]:
        """:attr:`rows` and the free heads' means (a step's estimate)."""
        return self.rows + tuple(free_name(t) for t in self.free)

    @property
    def target_fields(self) -> tuple[str, ...]:
        """The fluxes of every target, means then spreads, in the vocabulary's order (files, scores)."""
        return self.targets + tuple(spread_name(t) for t in self.targets)

    @property
    def flux_fields(self) -> tuple[str, ...]:
        """Every field of the ensemble's fluxes: :attr:`target_fields`, then the free heads."""
        return self.target_fields + tuple(free_name(t) for t in self.free)
