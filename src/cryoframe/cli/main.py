"""Entry point of the ``cryoframe`` console script.

Errors raised on purpose (:class:`cryoframe.CryoframeError`) are printed as one line and exit
with status 2; ``--debug`` shows the full traceback instead.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys

import typer
from rich.console import Console

import cryoframe.cli as cli_pkg
from cryoframe._errors import CryoframeError

_STATE = {"debug": False}
err_console = Console(stderr=True)


def _root(
    debug: bool = typer.Option(False, "--debug", help="Show full tracebacks on errors."),
) -> None:
    _STATE["debug"] = debug


def build_app() -> typer.Typer:
    """Create the Typer app and let every ``cryoframe.cli`` module register its commands."""
    app = typer.Typer(
        name="cryoframe",
        help="Foundation models for cryo-ET subtomograms and cryo-EM particle images.",
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
    )

    app.callback()(_root)
    for info in sorted(pkgutil.iter_modules(cli_pkg.__path__), key=lambda m: m.name):
        if info.name in {"main"} or info.name.startswith("_"):
            continue
        module = importlib.import_module(f"cryoframe.cli.{info.name}")
        register = getattr(module, "register", None)
        if register is not None:
            register(app)
    return app


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the exit status (also usable from tests)."""
    args = list(sys.argv[1:] if argv is None else argv)
    _STATE["debug"] = "--debug" in args
    app = build_app()
    try:
        app(args=args, prog_name="cryoframe", standalone_mode=False)
    except CryoframeError as exc:
        if _STATE["debug"]:
            raise
        err_console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        return 2
    except (typer.Exit, SystemExit) as exc:  # typer.Exit / explicit exits
        code = getattr(exc, "exit_code", None)
        if code is None:
            code = getattr(exc, "code", 0)
        return int(code or 0)
    except KeyboardInterrupt:
        err_console.print("interrupted")
        return 130
    except Exception as exc:  # click usage errors and the like
        import click

        if isinstance(exc, click.exceptions.ClickException):
            exc.show()
            return exc.exit_code
        if isinstance(exc, click.exceptions.Abort):
            return 1
        if _STATE["debug"]:
            raise
        err_console.print(
            f"[bold red]error:[/] {type(exc).__name__}: {exc} (run with --debug for the traceback)",
            highlight=False,
            soft_wrap=True,
        )
        return 1
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
