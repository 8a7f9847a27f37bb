"""The CLI's help is complete: every option explained, every command with an example.

Walks the Typer app as Click sees it, so hidden aliases and sub-groups are covered too.
"""

from __future__ import annotations

import click
import pytest
import typer

from cryoframe.bench import available_suites
from cryoframe.cli.main import build_app
from cryoframe.cli.main import main as cli_main

#: old spellings kept as hidden aliases of --pixel-size; they must not show in any help
HIDDEN_ALIASES = {"--angpix", "--voxel-size"}


def _commands():
    root = typer.main.get_command(build_app())
    ctx = click.Context(root)
    out = []

    def walk(cmd, path):
        if hasattr(cmd, "list_commands"):  # a (Typer) group
            for name in cmd.list_commands(ctx):
                walk(cmd.get_command(ctx, name), [*path, name])
        else:
            out.append((" ".join(path), cmd))

    walk(root, [])
    return out


COMMANDS = _commands()


def test_the_walk_sees_every_command():
    names = {name for name, _ in COMMANDS}
    assert {"fsc", "rank", "particles rank", "simulate particles", "particles simulate",
            "hetero train", "bench", "demo"} <= names
    assert len(names) >= 25


@pytest.mark.parametrize("name,cmd", COMMANDS, ids=[n for n, _ in COMMANDS])
def test_every_option_has_help_and_every_command_an_example(name, cmd):
    missing = [p.name for p in cmd.params if not p.hidden and not (getattr(p, "help", "") or "")
               .strip()]
    assert not missing, f"cryoframe {name}: options without help: {missing}"
    assert "Example" in (cmd.epilog or ""), f"cryoframe {name}: no example in the help"
    assert f"cryoframe {name}" in " ".join(cmd.epilog.split())
    visible = {o for p in cmd.params if not p.hidden for o in p.opts + p.secondary_opts}
    assert not visible & HIDDEN_ALIASES, f"cryoframe {name}: use --pixel-size"


@pytest.mark.parametrize("name,cmd", COMMANDS, ids=[n for n, _ in COMMANDS])
def test_commands_are_module_level_functions(name, cmd):
    assert "<locals>" not in cmd.callback.__qualname__, f"cryoframe {name} is a closure"


def test_one_implementation_per_action():
    cmds = dict(COMMANDS)

    def impl(name):
        cb = cmds[name].callback
        return getattr(cb, "__wrapped__", cb)

    assert impl("rank") is impl("particles rank")
    assert impl("simulate particles") is impl("particles simulate")
    assert [p.opts for p in cmds["rank"].params] == [p.opts for p in cmds["particles rank"].params]


def test_bench_help_lists_the_suites(capsys):
    assert cli_main(["bench", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    for suite in available_suites():
        assert suite in text


def test_fsc_pixel_size_and_hidden_angpix_alias(tmp_path, capsys):
    import json

    import numpy as np

    from cryoframe.io.mrc import write_mrc

    rng = np.random.default_rng(0)
    base = rng.normal(size=(16, 16, 16)).astype(np.float32)
    for i in (1, 2):
        noisy = base + 0.3 * rng.normal(size=base.shape).astype(np.float32)
        write_mrc(tmp_path / f"h{i}.mrc", noisy, voxel_size_angstrom=1.0)
    h1, h2 = str(tmp_path / "h1.mrc"), str(tmp_path / "h2.mrc")
    assert cli_main(["fsc", h1, h2, "--json", "--pixel-size", "2.5"]) == 0
    a = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert cli_main(["fsc", h1, h2, "--json", "--angpix", "2.5"]) == 0
    b = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert a["pixel_size_angstrom"] == b["pixel_size_angstrom"] == 2.5
    assert a["resolution_angstrom"] == b["resolution_angstrom"]
