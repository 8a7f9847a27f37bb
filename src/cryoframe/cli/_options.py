"""Shared option types of the commands: one flag name and one meaning per concept.

Every command builds its common options here, so ``--pixel-size``, ``--weights``, ``--seed``,
``--threads``, ``--batch-size``, ``--contrast`` ... are spelled and explained the same way
everywhere. :func:`example` gives the help epilog with a worked example that every command
shows (checked by ``tests/structure/test_cli_help.py``).
"""

from __future__ import annotations

from typing import Any

import typer

WEIGHTS_HELP = ("Weights file for this command's model (a checkpoint from `cryoframe pretrain` "
                "or `cryoframe particles pretrain`, read by cryoframe.models.pretrained); "
                "default: the shipped weights.")


def example(*commands: str) -> str:
    """Help epilog listing worked examples (one command line each)."""
    lines = "\n\n".join(f"  $ {c}" for c in commands)
    return f"Example:\n\n{lines}"


def pixel_size(help: str = "Pixel (voxel) size in Å; default: from the input files.",
               default: float | None = None) -> Any:
    """``--pixel-size`` (Å): the one name of the sampling option."""
    return typer.Option(default, "--pixel-size", help=help)


def pixel_size_alias(flag: str = "--angpix") -> Any:
    """Hidden old spelling of ``--pixel-size`` (``--angpix``, ``--voxel-size``), still accepted.

    Combine the two values with :func:`merge`.
    """
    return typer.Option(None, flag, hidden=True, help="Old spelling of --pixel-size.")


def merge(pixel_size_value: float | None, angpix_value: float | None) -> float | None:
    """``--pixel-size`` if given, else its hidden alias."""
    return pixel_size_value if pixel_size_value is not None else angpix_value


def weights() -> Any:
    """``--weights``: the checkpoint of the command's model (default: shipped)."""
    return typer.Option(None, "--weights", help=WEIGHTS_HELP)


def seed(default: int | None = 0, help: str = "Seed of every random draw.") -> Any:
    """``--seed``."""
    return typer.Option(default, "--seed", help=help)


def threads() -> Any:
    """``--threads``: torch CPU threads."""
    return typer.Option(None, "--threads", help="torch CPU threads (default: torch's choice).")


def batch_size(default: int | None, help: str = "Items per batch (memory vs speed).") -> Any:
    """``--batch-size``."""
    return typer.Option(default, "--batch-size", help=help)


def contrast(help: str = "Protein contrast of the data: auto (detect), white, dark (invert).",
             ) -> Any:
    """``--contrast``: auto, white or dark protein."""
    return typer.Option("auto", "--contrast", help=help)


def phase_flip() -> Any:
    """``--phase-flip``: CTF phase flipping of 2D images before the network."""
    return typer.Option(False, "--phase-flip/--no-phase-flip",
                        help="Phase-flip each image by its CTF before the network.")


def class_number() -> Any:
    """``--class``: keep only the rows of one class."""
    return typer.Option(None, "--class", help="Only rows of this class.")


def class_column() -> Any:
    """``--class-column``: the column ``--class`` refers to."""
    return typer.Option("rlnClassNumber", "--class-column",
                        help="STAR column holding the class numbers for --class.")


def tilt_min(default: float | None = -60.0) -> Any:
    """``--tilt-min`` (degrees)."""
    return typer.Option(default, "--tilt-min",
                        help="Lowest tilt angle (degrees) of the missing-wedge model.")


def tilt_max(default: float | None = 60.0) -> Any:
    """``--tilt-max`` (degrees)."""
    return typer.Option(default, "--tilt-max",
                        help="Highest tilt angle (degrees) of the missing-wedge model.")


def config(what: str) -> Any:
    """``--config``: a YAML file with the fields of a config class (flags override it)."""
    return typer.Option(None, "--config", help=f"YAML file with {what} fields (flags override).")
