"""``load_keras`` keeps the networks it has read (by path and content): a second load of the same
file parses nothing, a changed file is read anew at once, and a kept network cannot be changed
by the model sets that share it."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from models import runtime
from models.keras_file import KerasFile
from models.selection import model_set

TRAINED = Path(__file__).parent.parent / "models" / "trained"


@pytest.fixture
def reads(monkeypatch):
    """How many times a .keras file was parsed."""
    count = []
    original = KerasFile.read.__func__

    def counting(cls, path, content=None):
        count.append(Path(path).name)
        return original(cls, path, content)

    monkeypatch.setattr(KerasFile, "read", classmethod(counting))
    runtime._KEPT.clear()
    yield count
    runtime._KEPT.clear()


def test_a_file_is_parsed_once_and_read_again_when_it_changes(tmp_path, reads):
    path = tmp_path / "m.keras"
    shutil.copy(TRAINED / "fe_formate.hybrid.keras", path)
    first = runtime.load_keras(path)
    assert runtime.load_keras(path) is first and reads == ["m.keras"]
    # another network written in its place at once (within the clock tick of its mtime): read anew
    other = TRAINED / "outlet_co2_fraction.hybrid.keras"
    shutil.copy(other, path)
    second = runtime.load_keras(path)
    assert second is not first and len(reads) == 2
    x = np.full((1, second.n_columns), 0.3)
    assert np.array_equal(second.predict(x), runtime._read(other).predict(x))


def test_the_network_kept_is_the_content_hashed_even_if_the_file_changes_meanwhile(
        tmp_path, reads, monkeypatch):
    path = tmp_path / "m.keras"
    first, other = TRAINED / "fe_formate.hybrid.keras", TRAINED / "outlet_co2_fraction.hybrid.keras"
    shutil.copy(first, path)
    read_bytes = Path.read_bytes

    def rewritten_after_reading(self):
        content = read_bytes(self)
        if self == path:  # another writer replaces the file right after load_keras read it
            shutil.copy(other, path)
        return content

    monkeypatch.setattr(Path, "read_bytes", rewritten_after_reading)
    loaded = runtime.load_keras(path)
    x = np.full((1, loaded.n_columns), 0.3)
    assert np.array_equal(loaded.predict(x), runtime._read(first).predict(x))
    monkeypatch.setattr(Path, "read_bytes", read_bytes)
    assert runtime.load_keras(path).predict(x).tolist() == runtime._read(other).predict(x).tolist()


def test_kept_networks_are_read_only_and_model_sets_keep_their_own_banks(reads):
    a = model_set(default="hybrid")
    b = model_set(default="hybrid")
    assert len(reads) == 4  # the second set parsed nothing
    net = a.surrogates["cell_voltage"].network
    assert net is b.surrogates["cell_voltage"].network
    w = net.chain[0][0]
    with pytest.raises(ValueError, match="read-only"):
        w[0, 0] = 1.0
    assert a._bank is not b._bank and a._bank._one.x is not b._bank._one.x


def test_a_missing_file_is_still_named(tmp_path, reads):
    from cosim.errors import ModelError

    with pytest.raises((ModelError, OSError)) as info:
        runtime.load_keras(tmp_path / "nope.keras")
    assert "nope.keras" in str(info.value)
