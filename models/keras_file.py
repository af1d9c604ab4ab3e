"""Reading a Keras 3 ``.keras`` file: the archive, its layer configs and its weights.

A ``.keras`` file is a zip archive holding ``config.json`` (the model's class and
its layers' configs), ``metadata.json`` (the Keras version) and
``model.weights.h5``. :meth:`KerasFile.read` checks the archive with
:mod:`zipfile` and :mod:`json`; :meth:`KerasFile.open_weights` opens the weights
with :mod:`h5py` as :class:`Weights`. Neither imports TensorFlow or Keras, and
neither knows what a layer computes: :mod:`models.runtime` does.

Weights live at ``layers/<object path>/vars/<i>``, where the object path is not
the layer's name but its snake-cased class name plus a per-class counter, in
``model.layers`` order (the config's layer order; a Sequential model's
InputLayer is not counted): Keras's rule in
``saving_lib._save_container_state``. The ``name`` attribute Keras 3.11+ writes
on each group is checked against that rule.
"""
from __future__ import annotations

import io
import json
import re
import zipfile
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np

from cosim.errors import ModelError

__all__ = [
    "KerasFile", "Weights", "TensorRef", "snake_case", "layer_error", "input_size", "structure_refs",
    "tensor_refs",
]

#: a tensor in a Functional config: (layer name, node index, tensor index)
TensorRef = tuple[str, int, int]
_MEMBERS = ("config.json", "metadata.json", "model.weights.h5")


def snake_case(name: str) -> str:
    """Keras's ``naming.to_snake_case``, which names the weight groups."""
    name = re.sub(r"\W+", "", name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


def layer_error(where: str, layer: Mapping[str, Any], problem: str) -> ModelError:
    """The error for a problem with one layer of the file ``where``, naming the layer and its class."""
    return ModelError(f"{where}: layer {layer['name']!r} ({layer['class_name']}) {problem}")


@dataclass(frozen=True)
class KerasFile:
    """A checked ``.keras`` archive: the model's class, its config and the weights file.

    ``kind`` is ``Functional`` or ``Sequential``; ``body`` is the model's
    ``config``; ``layers`` are its layer configs, each with its ``name`` set
    (Keras 3 keeps it in the layer's ``config``); ``weights`` is the raw
    ``model.weights.h5``.
    """

    path: Path
    kind: str
    body: dict[str, Any]
    layers: list[dict[str, Any]]
    weights: bytes

    @property
    def where(self) -> str:
        """The file, as error messages name it."""
        return str(self.path)

    @classmethod
    def read(cls, path: str | Path, content: bytes | None = None) -> KerasFile:
        """Read and check the archive; :class:`ModelError` names the file and what is wrong.
        ``content``: the file's bytes, already read (then parsed instead of reading it again)."""
        path = Path(path)
        raw, names = _members(path, content)
        where = str(path)
        if "config.json" not in raw:
            raise ModelError(f"{where}: the archive has no config.json, so it is not a Keras 3 .keras file")
        if "model.weights.h5" not in raw:
            other = sorted(n for n in names if n.startswith("model.weights"))
            hint = f" ({', '.join(other)}: sharded or NPZ weights are not supported)" if other else ""
            raise ModelError(f"{where}: the archive has no model.weights.h5{hint}")
        kind, body = _model_config(where, raw)
        layers = [dict(layer, name=layer.get("name") or layer["config"]["name"]) for layer in body["layers"]]
        return cls(path, kind, body, layers, raw["model.weights.h5"])

    @property
    def model_layers(self) -> list[dict[str, Any]]:
        """The layers as Keras's ``model.layers`` lists them: a Sequential model's InputLayer is not one."""
        if self.kind == "Sequential" and self.layers and self.layers[0]["class_name"] == "InputLayer":
            return self.layers[1:]
        return self.layers

    def open_weights(self) -> Weights:
        """``model.weights.h5`` opened (close it, or use it in a ``with`` block)."""
        try:
            import h5py
        except ImportError:
            raise ModelError(f"{self.where}: reading .keras weights needs h5py (pip install h5py)") from None
        try:
            h5 = h5py.File(io.BytesIO(self.weights), "r")
        except OSError as exc:
            raise ModelError(f"{self.where}: model.weights.h5 is not a readable HDF5 file ({exc})") from None
        return Weights(self.where, h5, self.model_layers)


def _members(path: Path, content: bytes | None = None) -> tuple[dict[str, bytes], set[str]]:
    """The archive's members this reader uses, and the names of all its members (of
    ``content`` if given, else of the file)."""
    where = str(path)
    if content is None and not path.is_file():
        raise ModelError(f"{where}: no such model file" if not path.exists() else f"{where}: not a file")
    try:
        with zipfile.ZipFile(path if content is None else io.BytesIO(content)) as zf:
            names = set(zf.namelist())
            return {n: zf.read(n) for n in _MEMBERS if n in names}, names
    except (zipfile.BadZipFile, OSError, EOFError, NotImplementedError, zlib.error) as exc:
        raise ModelError(f"{where}: not a .keras archive (cannot read it as a zip file: {exc})") from None


def _model_config(where: str, raw: Mapping[str, bytes]) -> tuple[str, dict[str, Any]]:
    """``(class_name, config)`` of the model from ``config.json``, checked with ``metadata.json``."""
    try:
        config, meta = json.loads(raw["config.json"]), json.loads(raw.get("metadata.json", b"{}"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise ModelError(f"{where}: config.json or metadata.json is not valid JSON ({exc})") from None
    version = str(meta.get("keras_version", "3")) if isinstance(meta, dict) else "3"
    if not version.startswith("3"):
        raise ModelError(f"{where}: saved by Keras {version}; only Keras 3 files are supported")
    kind = config.get("class_name") if isinstance(config, dict) else None
    body = config.get("config") if isinstance(config, dict) else None
    if kind not in ("Functional", "Sequential") or not isinstance(body, dict) \
            or not isinstance(body.get("layers"), list):
        raise ModelError(f"{where}: config.json does not describe a Keras Functional or Sequential "
                         f"model (class_name {kind!r})")
    return kind, body


class Weights:
    """An open ``model.weights.h5`` and Keras's rule for where each layer's weights are.

    ``layers`` are the model's layers in ``model.layers`` order (see
    :attr:`KerasFile.model_layers`); a layer's group is its snake-cased class
    name, with ``_<n>`` for the n-th further layer of that class.
    """

    def __init__(self, where: str, h5: Any, layers: list[dict[str, Any]]) -> None:
        self.where, self.h5 = where, h5
        self.paths: dict[str, str] = {}
        used: dict[str, int] = {}
        for layer in layers:
            base = snake_case(layer["class_name"])
            used[base] = used.get(base, -1) + 1
            self.paths[layer["name"]] = base if used[base] == 0 else f"{base}_{used[base]}"

    def __enter__(self) -> Weights:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        self.h5.close()

    def path(self, layer: str) -> str | None:
        """The object path of a layer's weight group (``None`` for a layer Keras does not count)."""
        return self.paths.get(layer)

    def read(self, layer: Mapping[str, Any], shapes: list[tuple[int, ...]]) -> list[np.ndarray]:
        """The layer's weight arrays as float64, checked against the ``shapes`` its config implies."""
        at = f"layers/{self.paths.get(layer['name'])}/vars"
        group = self.h5.get(at)
        if group is None:
            raise layer_error(self.where, layer, f"has no weights at {at} in model.weights.h5")
        owner = group.attrs.get("name")
        owner = owner.decode() if isinstance(owner, bytes) else owner
        if owner is not None and owner != layer["name"]:
            raise layer_error(self.where, layer,
                              f"expects its weights at {at}, which belong to layer {owner!r}")
        if len(group) != len(shapes):
            raise layer_error(self.where, layer, f"has {len(group)} weight arrays at {at}, "
                              f"the config implies {len(shapes)}")
        out = []
        for i, shape in enumerate(shapes):
            if group[str(i)].attrs.get("dtype") == "bfloat16":
                raise layer_error(self.where, layer,
                                  "has bfloat16 weights, which the NumPy runtime does not read")
            out.append(np.asarray(group[str(i)], dtype=np.float64))
            if out[-1].shape != shape:
                raise layer_error(self.where, layer, f"weight {i} at {at} has shape {out[-1].shape}, "
                                  f"the config implies {shape}")
        return out


def input_size(where: str, name: str, cfg: Mapping[str, Any] | None) -> int:
    """The feature count of an input of shape ``(None, features)``; other shapes are refused."""
    shape = (cfg or {}).get("batch_shape", (cfg or {}).get("batch_input_shape"))
    if not isinstance(shape, (list, tuple)) or len(shape) != 2 or not isinstance(shape[1], int):
        raise ModelError(f"{where}: input {name!r} has shape {shape}; the NumPy runtime "
                         f"handles inputs of shape (None, features) only")
    return shape[1]


def structure_refs(obj: Any) -> list[TensorRef]:
    """``input_layers``/``output_layers`` flattened as Keras does (dict keys sorted)."""
    if isinstance(obj, list) and len(obj) == 3 and isinstance(obj[0], str):
        return [(obj[0], int(obj[1]), int(obj[2]))]
    if isinstance(obj, dict):
        return [r for k in sorted(obj) for r in structure_refs(obj[k])]
    return [r for v in obj for r in structure_refs(v)]


def tensor_refs(obj: Any) -> list[TensorRef]:
    """The ``keras_history`` of every ``__keras_tensor__`` in a node's args, in order."""
    if isinstance(obj, dict):
        if obj.get("class_name") == "__keras_tensor__":
            name, node, index = obj["config"]["keras_history"]
            return [(name, int(node), int(index))]
        return [r for v in obj.values() for r in tensor_refs(v)]
    return [r for v in obj for r in tensor_refs(v)] if isinstance(obj, (list, tuple)) else []
