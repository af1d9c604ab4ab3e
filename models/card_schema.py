"""What a valid model card's JSON is, as pydantic models, and every problem of one that is not.

:func:`problems` validates a parsed card against :class:`_Card` and its parts
and returns one line per problem, named by field as in the JSON
(``inputs[1] (anolyte_flow).min: 9.0 is above max 1.0``), so the reader
(:meth:`models.cards.ModelCard.from_dict`) reports them all at once. Checks that
compare fields (an input's min against its max, the output against the card's
variable and kind, an input listed twice) run once the fields they compare are
valid.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Annotated, Any, ClassVar

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainValidator,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import ErrorDetails, InitErrorDetails, PydanticCustomError

from cosim.errors import ModelError
from models.splits import Splits
from models.variables import FEATURES, FILE_KINDS, SPACES, VARIABLES

__all__ = ["SCHEMA_VERSION", "SPLITS", "REFERENCES", "problems"]

SCHEMA_VERSION = 1
#: splits every card reports metrics for ("train" and "validation" may be added)
SPLITS = ("test", "extrapolation")
#: what the metrics compare against: the noise-free truth of a simulated log, or the measurement
REFERENCES = ("truth", "measured")


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


# The models only validate: a ModelCard is built from the JSON itself, so what is read is exactly what
# was written. Leaf checks are plain validators, so nothing is coerced (True is not a number,
# "3" is not an integer) and the messages say what was expected in this project's words.

_PROBLEM = "model_card"
_Location = tuple[str | int, ...]


def _problem(message: str) -> PydanticCustomError:
    """A validation error whose text is ``message`` exactly (no template expansion)."""
    return PydanticCustomError(_PROBLEM, "{problem}", {"problem": message})


def _raise_all(title: str, found: list[tuple[_Location, str]]) -> None:
    """Raise every ``(location, message)`` in one error; a location is relative to the value
    being validated, and pydantic prefixes it with where that value is in the card."""
    if found:
        raise ValidationError.from_exception_data(
            title, [InitErrorDetails(type=_problem(m), loc=loc, input=None) for loc, m in found])


def _check(test: Callable[[Any], bool], message: str) -> PlainValidator:
    """A validator that passes values for which ``test`` holds and refuses the others with
    ``message`` (``{value}``: the value's repr)."""
    def check(value: Any) -> Any:
        if not test(value):
            raise _problem(message.replace("{value}", repr(value)))
        return value
    return PlainValidator(check)


def _member(choices: Mapping[str, Any] | tuple[str, ...], message: str) -> PlainValidator:
    return _check(lambda v: isinstance(v, str) and v in choices, message)


def _splits_rebuild(value: Any) -> Any:
    try:
        Splits.from_dict(value if isinstance(value, dict) else {})
    except ModelError as exc:
        raise _problem(str(exc).removeprefix("<card>: data.splits ")) from None
    return value


def _iso_timestamp(value: Any) -> Any:
    try:
        datetime.fromisoformat(value)
    except (TypeError, ValueError):
        raise _problem(f"{value!r} is not an ISO 8601 timestamp") from None
    return value


def _object(shape: str) -> BeforeValidator:
    """Refuse anything but a JSON object first, saying what the object holds."""
    def check(value: Any) -> Any:
        if not isinstance(value, dict):
            raise _problem(f"expected an object {shape}")
        return value
    return BeforeValidator(check)


def _non_empty_list(value: Any) -> Any:
    if not isinstance(value, list) or not value:
        raise _problem("expected a non-empty list of {name, unit, min, max}")
    return value


_FiniteNumber = Annotated[Any, _check(_is_number, "{value} is not a finite number")]
_NumberOrNull = Annotated[Any, _check(lambda v: v is None or _is_number(v),
                                      "{value} is not a finite number or null")]
_Integer = Annotated[Any, _check(_is_int, "{value} is not an integer")]


class _Part(BaseModel):
    """An object of the card: declared keys are required unless they have a default; other keys
    are kept unchecked."""

    model_config = ConfigDict(extra="allow")
    #: what the object holds, for the message when the value is not an object (None: its type)
    holds: ClassVar[str | None] = None

    @model_validator(mode="before")
    @classmethod
    def _an_object(cls, value: Any) -> Any:
        if not isinstance(value, dict):
            raise _problem(f"expected an object {cls.holds}" if cls.holds is not None
                           else f"expected an object, got {type(value).__name__}")
        return value


class _Input(_Part):
    """One network input: a feature in its own unit, and the training envelope [min, max]."""

    holds: ClassVar[str | None] = "{name, unit, min, max}"
    name: Annotated[Any, _member(FEATURES, f"{{value}} is not a feature ({', '.join(FEATURES)})")]
    unit: Any
    min: _FiniteNumber
    max: _FiniteNumber

    @model_validator(mode="after")
    def _consistent(self) -> _Input:
        found: list[tuple[_Location, str]] = []
        unit = FEATURES[self.name].unit
        if self.unit != unit:
            found.append((("unit",), f"{self.unit!r}, the feature's unit is {unit!r}"))
        if self.min > self.max:
            found.append((("min",), f"{self.min} is above max {self.max}"))
        _raise_all("input", found)
        return self


_SPACES = ", ".join(map(repr, SPACES))


class _Output(_Part):
    """What the network returns; :meth:`_Card._output_fits` compares it with the variable and kind."""

    holds: ClassVar[str | None] = "{name, unit}"
    name: Any
    unit: Any
    residual_of: Any = None
    baseline: Any = None
    space: Annotated[Any, _member(SPACES, f"{{value}}, expected one of {_SPACES}")] = "value"


class _Scores(_Part):
    """One split's scores against one reference (null where not computable)."""

    holds: ClassVar[str | None] = "{mae, rmse, r2}"
    mae: _NumberOrNull
    rmse: _NumberOrNull
    r2: _NumberOrNull


_Reference = Annotated[str, _check(lambda v: v in REFERENCES,
                                   f"unknown reference (known: {', '.join(REFERENCES)})")]
#: one split's scores by what they compare against
_SplitScores = Annotated[dict[_Reference, _Scores], _object("{truth|measured: {mae, rmse, r2}}")]


class _Metrics(_Part):
    """Scores per split: every split of :data:`SPLITS`, and any other split named."""

    holds: ClassVar[str | None] = "{split: {truth|measured: {mae, rmse, r2}}}"
    __pydantic_extra__: dict[str, _SplitScores] = Field(init=False)
    # one field per split of SPLITS
    test: _SplitScores
    extrapolation: _SplitScores


class _Data(_Part):
    """The log the model was made from, and what rebuilds its splits."""

    hash: Any
    rows: Annotated[Any, _check(lambda v: _is_int(v) and v >= 0, "{value} is not a row count")]
    source: Any
    splits: Annotated[Any, PlainValidator(_splits_rebuild)]


class _Training(_Part):
    """The settings and the run that made the model."""

    epochs_run: _Integer
    early_stopping: Any
    seed: _Integer
    time_s: Any
    architecture: Any
    optimizer: Any


class _Card(BaseModel):
    """A model card's JSON; no key beyond these."""

    model_config = ConfigDict(extra="forbid")

    schema_version: Annotated[Any, _check(lambda v: v == SCHEMA_VERSION,
                                          f"{{value}}, this co2twin reads version {SCHEMA_VERSION}")]
    variable: Annotated[Any, _member(VARIABLES, f"{{value}} is not one of {', '.join(VARIABLES)}")]
    kind: Annotated[Any, _member(FILE_KINDS, f"{{value}} is not one of {', '.join(FILE_KINDS)}")]
    inputs: Annotated[list[_Input], BeforeValidator(_non_empty_list)]
    output: _Output
    metrics: _Metrics
    data: _Data
    training: _Training
    versions: Annotated[Any, _check(
        lambda v: isinstance(v, dict) and all(x is None or isinstance(x, str) for x in v.values()),
        "expected an object of package -> version string")]
    created: Annotated[Any, PlainValidator(_iso_timestamp)]

    @model_validator(mode="before")
    @classmethod
    def _an_object(cls, value: Any) -> Any:
        if not isinstance(value, dict):
            raise _problem(f"expected a JSON object, got {type(value).__name__}")
        return value

    @field_validator("inputs")
    @classmethod
    def _each_once(cls, inputs: list[_Input]) -> list[_Input]:
        seen: set[str] = set()
        found: list[tuple[_Location, str]] = []
        for n, item in enumerate(inputs):
            if item.name in seen:
                found.append(((n, "name"), "listed twice"))
            seen.add(item.name)
        _raise_all("inputs", found)
        return inputs

    @field_validator("output")
    @classmethod
    def _output_fits(cls, output: _Output, info: ValidationInfo) -> _Output:
        """The output is the card's variable in its unit; a hybrid's is the residual over physics."""
        variable, kind = info.data.get("variable"), info.data.get("kind")
        found: list[tuple[_Location, str]] = []
        if variable is not None:
            if output.name != variable:
                found.append((("name",), f"{output.name!r}, the card is for {variable!r}"))
            unit = VARIABLES[variable].unit
            if output.unit != unit:
                found.append((("unit",), f"{output.unit!r}, {variable} is in {unit!r}"))
        if kind == "hybrid":
            if output.residual_of != "physics":
                found.append((("residual_of",), f"{output.residual_of!r}, a hybrid's network "
                                 "returns the residual over 'physics'"))
            if not isinstance(output.baseline, dict):
                found.append((("baseline",), "missing (the physics baseline the residual is over)"))
        elif kind == "nn" and output.residual_of is not None:
            found.append((("residual_of",), f"{output.residual_of!r}, an nn model returns the "
                             "variable itself"))
        _raise_all("output", found)
        return output


def problems(raw: Any) -> list[str]:
    """Every problem of a parsed card (``json.loads`` of it), one line each, named by field;
    empty for a valid card."""
    try:
        _Card.model_validate(raw)
    except ValidationError as exc:
        return [_describe(error, raw) for error in exc.errors()]
    return []


def _describe(error: ErrorDetails, raw: Any) -> str:
    """One problem as ``<field>: <what is wrong>``, the field written as in the JSON."""
    loc = [part for part in error["loc"] if part != "[key]"]
    if len(loc) == 1 and error["type"] == "missing":
        return f"missing field {loc[0]!r}"
    if len(loc) == 1 and error["type"] == "extra_forbidden":
        return f"unknown field {loc[0]!r} (known: {', '.join(_Card.model_fields)})"
    if error["type"] == "missing":
        message = "missing"
    elif error["type"] == _PROBLEM:
        message = error.get("ctx", {})["problem"]
    else:
        message = error["msg"]
    return f"{_field(loc, raw)}: {message}" if loc else message


def _field(loc: list[str | int], raw: Any) -> str:
    """``inputs[1] (anolyte_flow).min`` for ``["inputs", 1, "min"]``: an input is named."""
    text = ""
    for i, part in enumerate(loc):
        text += f"[{part}]" if isinstance(part, int) else ("." if text else "") + str(part)
        if i == 1 and loc[0] == "inputs" and isinstance(part, int):
            item = raw["inputs"][part]
            if isinstance(item, dict) and item.get("name") is not None:
                text += f" ({item['name']})"
    return text
