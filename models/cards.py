"""Model cards: the plain-JSON record beside every trained model file.

``<variable>.<kind>.keras`` has ``<variable>.<kind>.card.json`` next to it. The
card says what the network takes (inputs with units and the training envelope),
what it returns (for ``hybrid`` the residual over the physics baseline), how
well it did on which rows, which data and settings made it, and with which
software. Reading checks the JSON against the pydantic models of
:mod:`models.card_schema` and reports every problem at once, each prefixed
with the file and the field. The splits and scores a card records come from
:mod:`models.splits`.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from collections.abc import Callable

from cosim.atomic import atomic_path
from cosim.errors import ModelError
from models.card_schema import REFERENCES, SCHEMA_VERSION, SPLITS
from models.card_schema import problems as card_problems
from models.splits import METRICS, Splits, exclusions, score

#: the problems of a card's parsed JSON (none: a valid card)
Check = Callable[[Any], list[str]]

# The schema's constants and models.splits's names stay importable from here.
__all__ = [
    "SCHEMA_VERSION", "SPLITS", "REFERENCES", "METRICS", "InputRange", "ModelCard", "Splits",
    "exclusions", "score", "model_path", "card_path", "card_beside",
]


def model_path(models_dir: str | Path, variable: str, kind: str) -> Path:
    """Where the ``.keras`` file of ``variable``/``kind`` lives in ``models_dir``."""
    return Path(models_dir) / f"{variable}.{kind}.keras"


def card_path(models_dir: str | Path, variable: str, kind: str) -> Path:
    """Where the card of ``variable``/``kind`` lives in ``models_dir``."""
    return card_beside(model_path(models_dir, variable, kind))


def card_beside(model: str | Path) -> Path:
    """The card of any ``.keras`` file: ``<stem>.card.json`` in the same folder."""
    model = Path(model)
    return model.with_name(model.name.removesuffix(".keras") + ".card.json")


@dataclass(frozen=True)
class InputRange:
    """One network input: a feature name, its unit and the training envelope [min, max]."""

    name: str
    unit: str
    min: float
    max: float


@dataclass
class ModelCard:
    """What a trained model is, where its data came from and how well it does.

    ``output`` is ``{"name", "unit"}``; a hybrid's network returns the residual,
    so its output also has ``"residual_of": "physics"`` and ``"baseline"`` (the
    baseline's identity and the columns it reads). ``metrics`` is
    ``{split: {"truth"|"measured": {"mae", "rmse", "r2"}}}`` (``None`` when not
    computable). ``data["splits"]`` holds what rebuilds every split from the log.
    """

    variable: str
    kind: str
    inputs: list[InputRange]
    output: dict[str, Any]
    metrics: dict[str, dict[str, dict[str, float | None]]]
    data: dict[str, Any]
    training: dict[str, Any]
    versions: dict[str, str | None]
    created: str
    schema_version: int = field(default=SCHEMA_VERSION)

    @property
    def input_names(self) -> list[str]:
        return [i.name for i in self.inputs]

    @property
    def splits(self) -> Splits:
        return Splits.from_dict(self.data["splits"], f"{self.variable}.{self.kind} card")

    @property
    def envelope(self) -> dict[str, tuple[float, float]]:
        """Training range per input name."""
        return {i.name: (i.min, i.max) for i in self.inputs}

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict (non-finite numbers become ``None``)."""
        return _finite({
            "schema_version": self.schema_version,
            "variable": self.variable,
            "kind": self.kind,
            "inputs": [{"name": i.name, "unit": i.unit, "min": i.min, "max": i.max} for i in self.inputs],
            "output": self.output,
            "metrics": self.metrics,
            "data": self.data,
            "training": self.training,
            "versions": self.versions,
            "created": self.created,
        })

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, allow_nan=False) + "\n"

    @classmethod
    def from_dict(cls, raw: Any, source: str = "<card>", *, check: Check = card_problems,
                  what: str = "model card") -> ModelCard:
        """Validated card from a parsed JSON object; ModelError lists every problem. ``check``
        gives the problems of a kind of card (the reactor's by default; the battery's has its own)."""
        problems = check(raw)
        if problems:
            head = f"{source}: invalid {what}"
            raise ModelError(head + ": " + problems[0] if len(problems) == 1 else
                             head + f", {len(problems)} problems\n" + "\n".join(f"  - {p}" for p in problems))
        return cls(
            variable=raw["variable"], kind=raw["kind"],
            inputs=[InputRange(i["name"], i["unit"], float(i["min"]), float(i["max"]))
                    for i in raw["inputs"]],
            output=dict(raw["output"]), metrics=raw["metrics"], data=dict(raw["data"]),
            training=dict(raw["training"]), versions=dict(raw["versions"]), created=raw["created"],
            schema_version=raw["schema_version"],
        )

    @classmethod
    def from_json(cls, text: str, source: str = "<card>", *, check: Check = card_problems,
                  what: str = "model card") -> ModelCard:
        try:
            raw = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ModelError(f"{source}: not valid JSON ({exc})") from None
        return cls.from_dict(raw, source, check=check, what=what)

    @classmethod
    def read(cls, path: str | Path, *, check: Check = card_problems, what: str = "model card") -> ModelCard:
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ModelError(f"{path}: cannot read {what} ({exc.strerror or exc})") from None
        return cls.from_json(text, str(path), check=check, what=what)

    def write(self, path: str | Path, *, check: Check = card_problems, what: str = "model card") -> Path:
        """Validate and write atomically; returns the path."""
        path = Path(path)
        text = self.to_json()
        self.from_json(text, str(path), check=check, what=what)
        with atomic_path(path) as tmp:
            tmp.write_text(text, encoding="utf-8")
        return path


def _finite(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    if hasattr(obj, "item") and callable(obj.item):  # NumPy scalars
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj
