"""Stacked time-series plots of recorded signals, written atomically to PNG."""
from __future__ import annotations

from pathlib import Path
from collections.abc import Sequence

import pandas as pd

from cosim.atomic import atomic_path
from cosim.errors import SimulationError

__all__ = ["plot_signals"]


def plot_signals(
    frame: pd.DataFrame, signals: Sequence[tuple[str, str]], path: str | Path, *, title: str = ""
) -> Path:
    """One panel per ``(column, label)`` present in ``frame``; events drawn as dashed lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    if path.suffix.lower() != ".png":
        raise SimulationError(f"{path}: plots are written as PNG; expected a .png file name")
    present = [(c, label) for c, label in signals if c in frame.columns]
    if not present:
        raise SimulationError(
            f"{path}: none of the signals to plot were recorded "
            f"({', '.join(c for c, _ in signals)})"
        )
    times = frame.index.to_numpy()
    span = times[-1] - times[0] if len(times) > 1 else 0.0
    scale, unit = (3600.0, "h") if span > 7200 else (60.0, "min") if span > 300 else (1.0, "s")
    fig, axes = plt.subplots(len(present), 1, sharex=True, figsize=(10, 1.6 * len(present) + 1))
    axes = list(axes) if len(present) > 1 else [axes]
    for ax, (column, label) in zip(axes, present, strict=True):
        ax.plot(times / scale, frame[column].to_numpy(), lw=1.2)
        ax.set_ylabel(label, rotation=0, ha="right", va="center", fontsize=9)
        ax.grid(alpha=0.3)
        for t, _ in frame.attrs.get("events", []):
            ax.axvline(t / scale, color="0.5", ls="--", lw=0.8)
    axes[-1].set_xlabel(f"time [{unit}]")
    if title:
        axes[0].set_title(title)
    fig.tight_layout()
    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=110)
    finally:
        plt.close(fig)
    return path
