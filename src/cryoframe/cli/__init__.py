"""Command-line interface: ``cryoframe <command>``; one module per command group.

Every module in this package that defines ``register(app: typer.Typer)`` is discovered by
:mod:`cryoframe.cli.main` and adds its commands. Commands stay thin: flags (and an optional YAML
config) → validated config → one library call.
"""
