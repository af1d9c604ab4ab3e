"""The ensemble's recorder (cosim.ensemble_recorder): one block of rows x columns x variants,
in memory of its own, that grows when a run records more rows than planned."""
from __future__ import annotations

import numpy as np

from cosim.ensemble_recorder import EnsembleRecorder


def test_rows_beyond_the_plan_grow_the_block_and_keep_every_row():
    """Planned for 2 rows, given 5: every row comes back as appended (a float fills its
    column for every variant), and truncate forgets the rows after a time."""
    rec = EnsembleRecorder(["a", "b"], ["1", "1"], n=3, rows=2)
    rows = [(float(t), [np.arange(3.0) + t, 7.0 * t]) for t in range(5)]
    for t, row in rows:
        rec.append(t, row)
    data = rec.data()
    assert data.shape == (5, 2, 3) and data.dtype == np.float64
    for k, (_, (a, b)) in enumerate(rows):
        np.testing.assert_array_equal(data[k, 0], a)
        np.testing.assert_array_equal(data[k, 1], np.full(3, b))
    np.testing.assert_array_equal(rec.times, [0.0, 1.0, 2.0, 3.0, 4.0])
    data[0, 0, 0] = 42.0  # a view of the block: writable, like an array of its own
    assert rec.data()[0, 0, 0] == 42.0
    rec.truncate(2.0)
    assert rec.data().shape == (3, 2, 3)
