"""What every ``co2twin`` command shares: consoles, failing with a message, strict JSON."""
from __future__ import annotations

from typing import NoReturn

import typer
from rich.console import Console
from rich.markup import escape

from co2twin.strict_json import json_safe

__all__ = ["out", "err", "fail", "os_error", "json_safe"]

# no emoji codes: a scenario named ":x:" is shown as written (user text is also escaped)
out = Console(emoji=False)
err = Console(stderr=True, emoji=False)


def fail(exc: BaseException | str, code: int = 1) -> NoReturn:
    # the message quotes the user's file (names, values): never read it as markup
    err.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, markup=True,
               soft_wrap=True)
    raise typer.Exit(code)


def os_error(exc: OSError) -> str:
    """``path: reason`` for a failed read or write."""
    where = f"{exc.filename}: " if exc.filename else ""
    return f"{where}{exc.strerror or exc}"


