"""Small hand-built Keras models shared by the surrogate and model-selection tests."""
from __future__ import annotations

from typing import Any

import numpy as np

#: training envelope of the hand-built "trained" models: narrow in current density only
#: (240 mA/cm2 = 6 A on 25 cm2), wide everywhere else
WIDE = {
    "current_density": (0.0, 240.0), "gas_flow": (0.0, 20000.0), "co2_fraction": (0.0, 100.0),
    "humidity": (0.0, 100.0), "anolyte_flow": (0.0, 1000.0), "catholyte_flow": (0.0, 1000.0),
    "anolyte_conc": (0.0, 20.0), "catholyte_conc": (0.0, 20.0), "cell_temperature": (-40.0, 200.0),
    "charge_passed": (0.0, 1e6),
}
#: plausible nn outputs (the final bias); hybrids are small residuals around 0
TYPICAL = {"cell_voltage": 3.5, "fe_formate": 0.8, "outlet_co2_fraction": 70.0, "anolyte_ph": 13.5}


def network(keras: Any, names: tuple[str, ...], *, bias: float = 0.0, out_scale: float = 0.02,
            seed: int = 0) -> Any:
    """Named scalar inputs -> Concatenate -> Dense(4, tanh) -> Dense(1), deterministic weights."""
    inputs = [keras.Input(shape=(1,), name=n) for n in names]
    h = keras.layers.Dense(4, activation="tanh")(keras.layers.Concatenate()(inputs))
    model = keras.Model(inputs, keras.layers.Dense(1)(h))
    rng = np.random.default_rng(seed)
    model.set_weights([rng.normal(0.0, 0.02, (len(names), 4)), rng.normal(0.0, 0.5, 4),
                       rng.normal(0.0, out_scale, (4, 1)), np.array([bias])])
    return model
