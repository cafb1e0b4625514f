"""The thin `sugar` command: each area registers its subcommands from sugar.commands.<area>."""

from __future__ import annotations

import os
import sys

import typer

from sugar.commands import data, demo, encoder, knowledge, models, recognizer, serve
from sugar.errors import SugarError

app = typer.Typer(
    name="sugar",
    help="SUGAR-AR: recognise and describe human actions from skeleton sequences with a language model.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


@app.callback()
def _root(debug: bool = typer.Option(False, "--debug", help="Show full tracebacks on errors.")) -> None:
    if debug:
        os.environ["SUGAR_DEBUG"] = "1"


for area in (data, knowledge, encoder, recognizer, serve, demo, models):
    area.register(app)


def main() -> None:
    """Entry point: user mistakes (SugarError) print as one line and exit 2; --debug shows the traceback.
    A command that ends with typer.Exit(n) exits n (click returns it instead of exiting in this mode)."""
    debug = "--debug" in sys.argv or os.environ.get("SUGAR_DEBUG") == "1"
    try:
        code = app(standalone_mode=False)  # a command's typer.Exit(n) comes back as n in this mode
    except SugarError as exc:
        if debug:
            raise
        typer.secho(f"error: {exc}", err=True, fg=typer.colors.RED)
        sys.exit(2)
    except typer.Abort:
        typer.secho("aborted", err=True)
        sys.exit(130)
    except SystemExit:
        raise
    except Exception as exc:  # usage errors: click's ClickException (typer >= 0.2x vendors its own click)
        if callable(getattr(exc, "show", None)) and isinstance(getattr(exc, "exit_code", None), int):
            exc.show()
            sys.exit(exc.exit_code)
        raise
    if isinstance(code, int) and not isinstance(code, bool) and code:
        sys.exit(code)


if __name__ == "__main__":
    main()
