"""The battery's ageing models as the twin runs them: ``physics``, ``nn`` or ``hybrid``.

Each gives the capacity fraction ``C / C0`` of a cell after ``cycle`` (equivalent full)
cycles at ``temperature`` degC and ``c_rate`` 1/h (:data:`models.battery_log.FEATURES`),
for floats or NumPy arrays alike:

- ``physics``: the seed's law closed for future cycles (:func:`models.battery_physics.capacity_fraction`);
- ``nn``: a network trained on measured capacity fractions alone;
- ``hybrid``: the physics plus a network trained on the residual (measured - physics).

Networks are ``.keras`` files evaluated by the NumPy runtime (:func:`models.runtime.load_keras`,
no TensorFlow), with their card (:mod:`models.battery_card`) giving the kind and the
training envelope. The committed ones are in ``models/trained/battery``
(:data:`TRAINED_DIR`), trained by :mod:`models.battery_train`.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from cosim.errors import ModelError
from models.battery_card import KINDS, card_file, model_file, read_card
from models.battery_log import FEATURES
from models.battery_physics import K_SEED, capacity_fraction
from models.envelope import Envelope

__all__ = ["TRAINED_DIR", "CHOICES", "AgeingModel", "PhysicsAgeing", "NetworkAgeing", "ageing_model"]

#: the committed battery models
TRAINED_DIR = Path(__file__).resolve().parent / "trained" / "battery"
CHOICES = ("physics", *KINDS)
_FEATURES = tuple(FEATURES)


class AgeingModel:
    """Capacity fraction from (cycle, temperature, c_rate); ``envelope`` is None for physics."""

    kind = "physics"
    source = "seed law"
    envelope: Envelope | None = None

    def fraction(self, cycle: Any, temperature: Any, c_rate: Any) -> Any:
        """``C / C0``: a float for floats, an array for arrays."""
        raise NotImplementedError

    def outside(self, cycle: Any, temperature: Any, c_rate: Any) -> Any:
        """Whether the inputs leave the training envelope (False for a model without one)."""
        if self.envelope is None:
            return np.zeros(np.shape(cycle), dtype=bool) if isinstance(cycle, np.ndarray) else False
        if isinstance(cycle, np.ndarray) or isinstance(temperature, np.ndarray) \
                or isinstance(c_rate, np.ndarray):
            x = np.column_stack(np.broadcast_arrays(np.asarray(cycle, float), np.asarray(temperature, float),
                                                    np.asarray(c_rate, float)))
            shape = np.broadcast(cycle, temperature, c_rate).shape
            return self.envelope.outside(x).any(axis=1).reshape(shape)
        return self.envelope.first_outside((cycle, temperature, c_rate)) is not None

    def describe(self) -> str:
        return f"battery ageing: {self.kind} ({self.source})"


class PhysicsAgeing(AgeingModel):
    """The seed's law, ``k`` = :data:`~models.battery_physics.K_SEED` unless given."""

    def __init__(self, k: float = K_SEED) -> None:
        self.k = k
        self.source = f"seed law, k = {k:g}"

    def fraction(self, cycle: Any, temperature: Any, c_rate: Any) -> Any:
        return capacity_fraction(cycle, temperature, c_rate, self.k)


class NetworkAgeing(AgeingModel):
    """A network (nn) or physics plus a network (hybrid), in the card's feature order."""

    def __init__(self, path: str | Path) -> None:
        from models.runtime import load_keras

        path = Path(path)
        self.network = load_keras(path)
        card = read_card(card_beside_model(path))
        names = list(self.network.input_names)
        if sorted(names) != sorted(_FEATURES) or sorted(card.input_names) != sorted(_FEATURES):
            raise ModelError(f"{path}: expected the inputs {', '.join(_FEATURES)}, found "
                             f"{', '.join(names)} (card: {', '.join(card.input_names)})")
        self.kind = card.kind
        self.source = str(path)
        self.physics = PhysicsAgeing() if card.kind == "hybrid" else None
        self._order = [_FEATURES.index(n) for n in names]
        lower = np.array([card.envelope[n][0] for n in _FEATURES])
        upper = np.array([card.envelope[n][1] for n in _FEATURES])
        self.envelope = Envelope.of(lower, upper)

    def fraction(self, cycle: Any, temperature: Any, c_rate: Any) -> Any:
        base = 0.0 if self.physics is None else self.physics.fraction(cycle, temperature, c_rate)
        if isinstance(cycle, np.ndarray) or isinstance(temperature, np.ndarray) \
                or isinstance(c_rate, np.ndarray):
            cols = np.broadcast_arrays(np.asarray(cycle, float), np.asarray(temperature, float),
                                       np.asarray(c_rate, float))
            shape = cols[0].shape
            x = np.column_stack([cols[i].ravel() for i in self._order])
            return base + self.network.predict(x)[:, 0].reshape(shape)
        values = (cycle, temperature, c_rate)
        return base + self.network.predict_one([values[i] for i in self._order])


def card_beside_model(path: Path) -> Path:
    """The card of a battery ``.keras`` file (``<stem>.card.json``)."""
    return path.with_name(path.name.removesuffix(".keras") + ".card.json")


def ageing_model(choice: str, directory: str | Path | None = None) -> AgeingModel:
    """The ageing model a scenario chooses: ``physics``, ``nn`` or ``hybrid`` (from ``directory``,
    default :data:`TRAINED_DIR`); :class:`ModelError` names the file when one does not load."""
    if choice == "physics":
        return PhysicsAgeing()
    if choice not in KINDS:
        raise ModelError(f"unknown battery ageing model {choice!r}; expected one of {', '.join(CHOICES)}")
    folder = Path(directory) if directory is not None else TRAINED_DIR
    path = model_file(folder, choice)
    if not path.exists():
        raise ModelError(f"{path}: no {choice} battery model there (train one with "
                         f"`co2twin battery train --out {folder}`)")
    if not card_file(folder, choice).exists():
        raise ModelError(f"{card_file(folder, choice)}: the model card of {path.name} is missing")
    model = NetworkAgeing(path)
    if model.kind != choice:
        raise ModelError(f"{path}: its card says kind {model.kind!r}, the file name {choice!r}")
    return model
