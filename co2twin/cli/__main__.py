"""``python -m co2twin.cli``: the same as the ``co2twin`` command."""
from __future__ import annotations

from .app import main

main()
