"""``python -m co2twin``: the same as the ``co2twin`` command."""
from __future__ import annotations

from .cli import main

main()
