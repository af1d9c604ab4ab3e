"""The NumPy runtime reproduces Keras 3 on .keras files, fast, without importing TensorFlow.

Reference values come from Keras itself (``keras.saving.load_model(path)(x)``),
on the four VALCO2T networks and on models built and saved here. Inputs are
float32-representable so both sides see the same numbers.
"""
from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from cosim.errors import ModelError
from models.runtime import SUPPORTED_ACTIVATIONS, load_keras

REPO = Path(__file__).resolve().parents[1]
from conftest import VALCO2T_MODELS as VALCO2T  # noqa: E402
VALCO2T_NAMES = ("DNN_V_model", "DNN_CH2_model", "DNN_CCO2_model", "DNN_pH_model")
V_MODEL = VALCO2T / "DNN_V_model.keras"
needs_valco2t = pytest.mark.usefixtures("valco2t_models")

#: Keras's own save() trips a NumPy 2 deprecation inside TensorFlow
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")

#: (mean, std) of the VALCO2T inputs (process.md); V and pH are not listed there, so plant-like values
STATS = {
    "I": (2.52, 7.24), "Q_co2_in": (99.1, 4.8), "C_CO2_in": (99.1, 4.8), "Q_an": (5.57, 0.64),
    "Q_cat": (5.57, 0.64), "C_an": (2.0, 2.25), "C_cat": (1.50, 1.68), "C_H2_out": (0.08, 0.06),
    "C_CO2_out": (99.1, 4.8), "V": (3.5, 1.0), "pH": (10.0, 3.0),
}
#: the constants the original VALCO2T service fed into each model's self-input
SERVICE_CONSTANTS = {"V": 10.0, "C_H2_out": 0.0, "C_CO2_out": 0.0, "pH": 7.0}


@pytest.fixture(scope="module")
def keras() -> Any:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras
    keras.utils.set_random_seed(7)
    return keras


def f32(x: np.ndarray) -> np.ndarray:
    return np.asarray(x, dtype=np.float32).astype(np.float64)


def keras_predict(model: Any, x: np.ndarray, names: tuple[str, ...], sizes: tuple[int, ...]) -> np.ndarray:
    """Keras's outputs for column-stacked ``x``, fed by input name, side by side as a 2-D array."""
    cuts = np.cumsum((0,) + sizes)
    feed = {n: x[:, a:b].astype(np.float32) for n, a, b in zip(names, cuts[:-1], cuts[1:])}
    if not isinstance(model._inputs_struct, dict):
        feed = [feed[t.name] for t in model.inputs]
    out = model(feed)
    out = [out] if not isinstance(out, (list, tuple)) else out
    return np.hstack([np.asarray(o.numpy(), dtype=np.float64).reshape(len(x), -1) for o in out])


def assert_agrees(got: np.ndarray, ref: np.ndarray) -> None:
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-5)


def save(model: Any, path: Path) -> Path:
    model.save(path)
    return path


def rewrite(src: Path, dst: Path, config: Any = None, weights: Any = None,
            drop: tuple[str, ...] = ()) -> Path:
    """Copy a .keras archive, optionally editing its config (a function) or weights (an h5py function)."""
    import h5py

    with zipfile.ZipFile(src) as zin:
        files = {n: zin.read(n) for n in zin.namelist() if n not in drop}
    if config is not None:
        cfg = json.loads(files["config.json"])
        config(cfg)
        files["config.json"] = json.dumps(cfg).encode()
    if weights is not None:
        buf = io.BytesIO(files["model.weights.h5"])
        with h5py.File(buf, "a") as h5:
            weights(h5)
        files["model.weights.h5"] = buf.getvalue()
    with zipfile.ZipFile(dst, "w") as zout:
        for name, data in files.items():
            zout.writestr(name, data)
    return dst


@needs_valco2t
@pytest.mark.parametrize("name", VALCO2T_NAMES)
def test_valco2t_models_match_keras(keras: Any, name: str) -> None:
    """Each VALCO2T network gives Keras's outputs within 1e-5, in batches and one sample at a time."""
    path = VALCO2T / f"{name}.keras"
    net, model = load_keras(path), keras.saving.load_model(path)
    assert net.input_names == tuple(t.name for t in model.inputs)
    assert net.output_names == tuple(model.output_names)
    rng = np.random.default_rng(1)
    mean = np.array([STATS[n][0] for n in net.input_names])
    std = np.array([STATS[n][1] for n in net.input_names])
    x = f32(mean + 1.5 * std * rng.standard_normal((256, len(mean))))
    for i, n in enumerate(net.input_names):
        if n in SERVICE_CONSTANTS:
            x[:32, i] = SERVICE_CONSTANTS[n]
    assert_agrees(net.predict(x), keras_predict(model, x, net.input_names, net.input_sizes))
    for row in x[:8]:
        ref = keras_predict(model, row[None, :], net.input_names, net.input_sizes)[0, 0]
        assert net.predict_one(row.tolist()) == pytest.approx(ref, rel=1e-5, abs=1e-5)
        assert net.predict(row[None, :])[0, 0] == pytest.approx(ref, rel=1e-5, abs=1e-5)


def pipeline_model(keras: Any) -> Any:
    """Scalar inputs -> Concatenate -> Normalization -> Dense(tanh) -> Dropout -> BN -> Dense(relu) -> 1"""
    L = keras.layers
    names = ("current", "gas_flow", "co2_fraction", "temperature")
    inputs = {n: keras.Input((1,), name=n) for n in names}
    norm = L.Normalization()
    rng = np.random.default_rng(2)
    norm.adapt(rng.normal([50, 100, 80, 25], [20, 5, 10, 3], (400, 4)).astype("float32"))
    x = norm(L.Concatenate()([inputs[n] for n in ("temperature", "current", "co2_fraction", "gas_flow")]))
    x = L.Dropout(0.3)(L.Dense(12, activation="tanh", name="dense_1")(x))
    bn = L.BatchNormalization(epsilon=0.01)
    x = bn(x)
    bn.set_weights([rng.uniform(0.5, 2, 12), rng.normal(0, 0.5, 12), rng.normal(0, 0.3, 12),
                    rng.uniform(0.1, 2, 12)])
    x = L.Dense(8, activation="relu", name="dense")(x)
    return keras.Model([inputs[n] for n in names], L.Dense(1, name="estimate")(x)), norm, rng


def test_functional_pipeline_matches_keras(keras: Any, tmp_path: Path) -> None:
    """Normalization, Dropout and BatchNormalization with non-trivial statistics fold away exactly."""
    model, norm, rng = pipeline_model(keras)
    net = load_keras(save(model, tmp_path / "pipeline.keras"))
    assert net.input_names == ("current", "gas_flow", "co2_fraction", "temperature")
    x = f32(rng.normal([50, 100, 80, 25], [30, 8, 15, 5], (300, 4)))
    assert_agrees(net.predict(x), keras_predict(model, x, net.input_names, net.input_sizes))
    assert net.input_center == pytest.approx(np.asarray(norm.mean).ravel()[[1, 3, 2, 0]], rel=1e-6)
    assert any("folded" in line for line in net.layers_summary() if "(Normalization)" in line)


def test_sequential_models_match_keras(keras: Any, tmp_path: Path) -> None:
    """Sequential models, with or without an Input, read weights by object path, not by layer name."""
    L = keras.layers
    rng = np.random.default_rng(3)
    first = keras.Sequential([
        keras.Input((4,)), L.Rescaling(0.5, offset=-1.0), L.Dense(6, activation="elu", name="dense_1"),
        L.GaussianNoise(0.1), L.Dense(5, name="dense"), L.LeakyReLU(), L.BatchNormalization(center=False),
        L.ActivityRegularization(), L.Dense(2, activation="softplus", name="head"),
    ])
    first.layers[5].set_weights([rng.uniform(0.5, 2, 5), rng.normal(0, 1, 5), rng.uniform(0.2, 3, 5)])
    second = keras.Sequential([L.Dense(3, activation="selu"), L.Dense(1, use_bias=False)])
    second.build((None, 4))
    x = f32(rng.normal(0, 3, (200, 4)))
    for i, model in enumerate((first, second)):
        net = load_keras(save(model, tmp_path / f"seq{i}.keras"))
        assert_agrees(net.predict(x), model(x.astype(np.float32)).numpy().astype(float))
        one = float(model(x[:1].astype(np.float32)).numpy()[0, 0])
        assert net.predict_one(x[0]) == pytest.approx(one, abs=1e-5)


def test_every_supported_activation_matches_keras(keras: Any, tmp_path: Path) -> None:
    """Every activation the runtime names agrees with Keras 3's definition, batched and per sample."""
    L = keras.layers
    inp = keras.Input((3,), name="x")
    init = keras.initializers.RandomNormal(stddev=1.5, seed=4)
    branches = [L.Dense(4, activation=a, kernel_initializer=init, bias_initializer=init, name=f"d_{a}")(inp)
                for a in SUPPORTED_ACTIVATIONS]
    branches.append(L.Activation("gelu")(L.Dense(4, kernel_initializer=init)(inp)))
    model = keras.Model(inp, L.Concatenate()(branches))
    net = load_keras(save(model, tmp_path / "activations.keras"))
    x = f32(np.random.default_rng(4).normal(0, 1.5, (250, 3)))
    got, ref = net.predict(x), model(x.astype(np.float32)).numpy().astype(float)
    for i, a in enumerate(SUPPORTED_ACTIVATIONS + ("Activation(gelu)",)):
        np.testing.assert_allclose(got[:, 4 * i:4 * i + 4], ref[:, 4 * i:4 * i + 4], rtol=1e-5, atol=1e-5,
                                   err_msg=a)
    assert_agrees(np.array([net.predict(row[None, :])[0] for row in x[:3]]), ref[:3])


def test_multi_size_inputs_branches_and_shared_layers_match_keras(keras: Any, tmp_path: Path) -> None:
    """A graph with vector inputs, branches, a shared layer and three outputs matches Keras."""
    L = keras.layers
    a, b, z = keras.Input((2,), name="a"), keras.Input((3,), name="b"), keras.Input((1,), name="zeta")
    h = L.Concatenate()([b, a, z])
    h1 = L.Dense(5, activation="tanh")(h)
    prelu = L.PReLU()
    h2 = L.ReLU(max_value=1.5, negative_slope=0.1, threshold=0.2)(prelu(L.Dense(5)(a)))
    merged = L.Concatenate()([h1, h2])
    shared = L.Dense(4, activation="sigmoid", name="shared")
    out2 = L.Softmax()(L.Dense(3)(L.ELU(alpha=0.7)(merged)))
    outputs = [L.Dense(2, name="two")(merged), out2, shared(h1), shared(h2)]
    model = keras.Model({"zeta": z, "b": b, "a": a}, outputs)
    prelu.set_weights([np.linspace(-0.5, 0.5, 5)])
    net = load_keras(save(model, tmp_path / "graph.keras"))
    assert (net.input_names, net.input_sizes) == (("a", "b", "zeta"), (2, 3, 1))
    assert net.output_sizes == (2, 3, 4, 4)
    x = f32(np.random.default_rng(5).normal(0, 2, (220, 6)))
    ref = keras_predict(model, x, net.input_names, net.input_sizes)
    assert_agrees(net.predict(x), ref)
    mapping = {"zeta": x[:, 5], "a": x[:, :2], "b": x[:, 2:5], "unused": np.zeros(220)}
    assert_agrees(net.predict(mapping), ref)
    assert net.predict_one(x[7]) == pytest.approx(ref[7, 0], abs=1e-5)
    with pytest.raises(ModelError, match=r"graph\.keras: input 'b' takes 3 value\(s\) per sample, got shape"):
        net.predict({**mapping, "b": x[:, 2:4]})


@needs_valco2t
def test_predict_accepts_a_mapping_by_input_name() -> None:
    """predict takes name -> values in any order, ignores extra names and reports missing ones."""
    net = load_keras(V_MODEL)
    x = np.random.default_rng(6).normal(3, 1, (50, 6))
    by_name = {n: x[:, i] for i, n in reversed(list(enumerate(net.input_names)))}
    np.testing.assert_array_equal(net.predict({**by_name, "humidity": np.ones(50)}), net.predict(x))
    del by_name["Q_an"]
    with pytest.raises(ModelError, match=r"DNN_V_model.keras: no values for input\(s\) Q_an"):
        net.predict(by_name)


@needs_valco2t
def test_a_batch_gives_what_one_sample_at_a_time_gives() -> None:
    """predict on N rows (any order, any row count) returns (N, 1) float64 equal to N predict_one calls."""
    # speed (one-sample latency, batch throughput) is measured by `co2twin bench`, not asserted here
    net = load_keras(V_MODEL)
    rng = np.random.default_rng(7)
    x = rng.normal(3, 2, (1000, 6))
    y = net.predict(x)
    assert y.shape == (1000, 1) and y.dtype == np.float64
    one_at_a_time = [net.predict_one(row) for row in x]
    assert all(isinstance(v, float) for v in one_at_a_time)
    np.testing.assert_allclose(y[:, 0], one_at_a_time, rtol=1e-12, atol=1e-12)
    order = rng.permutation(len(x))
    np.testing.assert_allclose(net.predict(x[order]), y[order], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(net.predict(x[:1]), y[:1], rtol=1e-12, atol=1e-12)
    assert net.predict(np.empty((0, 6))).shape == (0, 1)
    from_lists = net.predict(x[:10].tolist())
    assert from_lists.dtype == np.float64
    np.testing.assert_allclose(from_lists, y[:10], rtol=1e-12, atol=1e-12)


@needs_valco2t
def test_no_tensorflow_or_keras_is_imported() -> None:
    """Loading, predicting and checking a model leave tensorflow and keras out of sys.modules."""
    code = (
        "import sys\n"
        "from models.runtime import load_keras\n"
        "from models.check import check_model\n"
        f"net = load_keras({str(V_MODEL)!r})\n"
        "net.predict([[2.0, 1.5, 2.5, 5.5, 5.5, 3.0]] * 3); net.predict_one([2.0, 1.5, 2.5, 5.5, 5.5, 3.0])\n"
        f"check_model({str(V_MODEL)!r})\n"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras'))\n"
        "print(loaded)\n"
        "sys.exit(1 if loaded else 0)\n"
    )
    run = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                         timeout=60, check=False)
    assert run.returncode == 0, run.stdout + run.stderr


def test_missing_file_is_named(tmp_path: Path) -> None:
    """A path that does not exist gives a ModelError naming it."""
    with pytest.raises(ModelError, match=r"nope\.keras: no such model file"):
        load_keras(tmp_path / "nope.keras")


def test_text_file_renamed_keras_is_not_an_archive(tmp_path: Path) -> None:
    """A text file called .keras is refused as not a zip archive."""
    path = tmp_path / "notes.keras"
    path.write_text("epochs: 100\n")
    with pytest.raises(ModelError, match=r"notes\.keras: not a \.keras archive"):
        load_keras(path)


@needs_valco2t
def test_truncated_archive_is_refused(tmp_path: Path) -> None:
    """A .keras file cut short (a failed copy) is refused as unreadable."""
    path = tmp_path / "cut.keras"
    path.write_bytes(V_MODEL.read_bytes()[:20_000])
    with pytest.raises(ModelError, match=r"cut\.keras: not a \.keras archive"):
        load_keras(path)


@needs_valco2t
def test_archive_without_weights_or_config_is_refused(tmp_path: Path) -> None:
    """A zip lacking model.weights.h5 or config.json names what is missing."""
    no_weights = rewrite(V_MODEL, tmp_path / "no_weights.keras", drop=("model.weights.h5",))
    with pytest.raises(ModelError, match=r"no_weights\.keras: the archive has no model\.weights\.h5"):
        load_keras(no_weights)
    no_config = rewrite(V_MODEL, tmp_path / "no_config.keras", drop=("config.json",))
    with pytest.raises(ModelError, match=r"no_config\.keras: the archive has no config\.json"):
        load_keras(no_config)


@needs_valco2t
def test_config_that_is_not_a_keras_model_is_refused(tmp_path: Path) -> None:
    """A config.json that is not a Functional or Sequential model is refused."""
    def subclassed(cfg: dict) -> None:
        cfg.clear()
        cfg.update({"class_name": "MyModel", "config": {"units": 3}})

    path = rewrite(V_MODEL, tmp_path / "custom.keras", config=subclassed)
    with pytest.raises(ModelError, match=r"custom\.keras: config\.json does not describe a Keras Functional"):
        load_keras(path)


def _layer(cfg: dict, name: str) -> dict:
    return next(layer for layer in cfg["config"]["layers"] if layer["name"] == name)


@needs_valco2t
def test_weights_shaped_unlike_the_config_are_refused(tmp_path: Path) -> None:
    """A kernel whose shape differs from the config's units is named with both shapes."""
    path = rewrite(V_MODEL, tmp_path / "units.keras",
                   config=lambda c: _layer(c, "dense_1")["config"].update(units=9))
    with pytest.raises(ModelError, match=r"units\.keras: layer 'dense_1' \(Dense\) weight 0 at layers/"
                                         r"dense_1/vars has shape \(8, 8\), the config implies \(8, 9\)"):
        load_keras(path)


@needs_valco2t
def test_missing_or_misplaced_weights_are_refused(tmp_path: Path) -> None:
    """A layer whose weight group is missing, or belongs to another layer, is refused."""
    gone = rewrite(V_MODEL, tmp_path / "gone.keras", weights=lambda h5: h5.__delitem__("layers/dense_1"))
    with pytest.raises(ModelError, match=r"gone\.keras: layer 'dense_1' \(Dense\) has no weights at "
                                         r"layers/dense_1"):
        load_keras(gone)

    def relabel(h5: Any) -> None:
        h5["layers/dense/vars"].attrs["name"] = "other"

    moved = rewrite(V_MODEL, tmp_path / "moved.keras", weights=relabel)
    with pytest.raises(ModelError, match=r"moved\.keras: layer 'dense' \(Dense\) .* belong to layer 'other'"):
        load_keras(moved)


@needs_valco2t
def test_unsupported_activation_and_inverted_normalization_are_refused(tmp_path: Path) -> None:
    """An unknown activation and Normalization(invert=True) are refused, naming the layer."""
    path = rewrite(V_MODEL, tmp_path / "act.keras",
                   config=lambda c: _layer(c, "dense")["config"].update(activation="rrelu"))
    with pytest.raises(ModelError, match=r"act\.keras: layer 'dense' \(Dense\) uses activation "
                                         r"'rrelu'.*supported: "):
        load_keras(path)

    def invert(cfg: dict) -> None:
        layer = _layer(cfg, "batch_normalization")
        layer["class_name"] = "Normalization"
        layer["config"] = {"name": "batch_normalization", "axis": [-1], "invert": True,
                           "mean": None, "variance": None}

    with pytest.raises(ModelError, match=r"invert\.keras: layer 'batch_normalization' "
                                         r"\(Normalization\) has invert=True"):
        load_keras(rewrite(V_MODEL, tmp_path / "invert.keras", config=invert))


def test_unsupported_layer_is_named(keras: Any, tmp_path: Path) -> None:
    """A model with an LSTM is refused with the layer's name, class and the supported list."""
    inp = keras.Input((5, 3), name="window")
    model = keras.Model(inp, keras.layers.Dense(1)(keras.layers.LSTM(4, name="lstm")(inp)))
    path = save(model, tmp_path / "recurrent.keras")
    with pytest.raises(ModelError, match=r"recurrent\.keras: layer 'lstm' \(LSTM\) is not supported by the "
                                         r"NumPy runtime; supported: .*Dense"):
        load_keras(path)


@needs_valco2t
def test_wrong_number_of_columns_is_named() -> None:
    """predict and predict_one name the expected inputs when given the wrong number of columns."""
    net = load_keras(V_MODEL)
    message = r"DNN_V_model\.keras: expects 6 inputs \(C_an, C_cat, I, Q_an, Q_cat, V\), got 5"
    with pytest.raises(ModelError, match=message):
        net.predict(np.zeros((3, 5)))
    with pytest.raises(ModelError, match=message):
        net.predict_one([1.0, 2.0, 3.0, 4.0, 5.0])
    with pytest.raises(ModelError, match=r"expects a 2-D array"):
        net.predict(np.zeros(6))
