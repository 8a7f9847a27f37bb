"""``cryoframe pretrain --config cfg.yaml``: pretraining of a subtomogram encoder.

``--objective nrcl`` (default): NRCL of the APT-ViT pair encoder; YAML keys of
:class:`cryoframe.train.loop.PretrainConfig` → flag overrides → one call to
:func:`cryoframe.train.loop.run_pretrain`. ``--objective supervised``: metric pretraining of any
registry backbone on the simulator's class labels (:mod:`cryoframe.train.supervised`, keys of
:class:`~cryoframe.train.supervised.SupervisedConfig`; the shipped encoder was made this way, its
config is ``benchmarks/runs/cnn3d_supervised/config.yaml``); ``--max-steps`` trains that many more
steps and stops, so one run can continue across sessions from its committed checkpoint. Re-running the same command resumes from the run
folder's ``checkpoint.pt``. Under ``torchrun --nproc_per_node N`` each process trains on its own
slice of every epoch (gloo on CPU, NCCL on GPU).
"""

from __future__ import annotations

from pathlib import Path

import typer

from cryoframe._config import load_config
from cryoframe._errors import InputError
from cryoframe._record import write_timestamped_record
from cryoframe.cli import _options as opt
from cryoframe.train.loop import load_pretrain_config, run_pretrain
from cryoframe.train.supervised import SupervisedConfig, run_supervised


def pretrain(
    config: Path = typer.Option(None, "--config", "-c", help="YAML config file."),
    out: Path = typer.Option(Path("pretrain_out"), "--out", help="Run folder."),
    steps: int = typer.Option(None, "--steps", help="Total optimisation steps."),
    batch_size: int = opt.batch_size(None, help="Per-process batch size."),
    lr: float = typer.Option(None, "--lr", help="Peak learning rate (default √(B/512)·1e-5)."),
    threads: int = opt.threads(),
    max_wall_s: float = typer.Option(None, "--max-wall-s", help="Stop after this wall time."),
    seed: int = opt.seed(None, help="Run seed."),
    store: Path = typer.Option(None, "--store", help="Train from this CryoEngine store."),
    objective: str = typer.Option("nrcl", "--objective",
                                  help="nrcl (APT-ViT pair encoder) or supervised."),
    max_steps: int = typer.Option(None, "--max-steps",
                                  help="supervised: train at most this many more steps."),
    device: str = typer.Option("cpu", "--device",
                               help="supervised: torch device of the network (cpu, cuda)."),
) -> None:
    """Pretrain an encoder (resumes automatically from OUT/checkpoint.pt).

    Example: ``cryoframe pretrain --objective supervised -c config.yaml --out run/``
    """
    from rich.console import Console

    if objective == "supervised":
        _supervised(config, out, steps, batch_size, lr, threads, seed, max_steps, device,
                    max_wall_s)
        return
    if objective != "nrcl":

        raise InputError(f"unknown objective '{objective}'", field="--objective",
                         expected="nrcl or supervised")


    cfg = load_pretrain_config(config, steps=steps, batch_size=batch_size, lr=lr,
                               threads=threads, max_wall_s=max_wall_s, seed=seed)
    if store is not None:
        cfg = cfg.model_copy(update={"data": cfg.data.model_copy(
            update={"kind": "store", "store_path": str(store)})})
    summary = run_pretrain(cfg, out)
    write_timestamped_record(out, "pretrain", {"config": cfg.model_dump(mode="json"),
                                 "start_step": summary.get("start_step"),
                                 "steps_done": summary.get("steps_done")})
    Console().print(
        f"steps {summary['start_step']}→{summary['steps_done']}, "
        f"{summary['samples_per_s']:.2f} samples/s "
        f"(network only {summary['net_samples_per_s']:.2f}), "
        f"k-NN {summary.get('knn_acc', float('nan')):.1f} %, encoder: {out / 'encoder.pt'}")


def register(app: typer.Typer) -> None:
    """Add the ``pretrain`` command."""
    app.command("pretrain", epilog=opt.example(
        "cryoframe pretrain --config pretrain.yaml --out pretrain_out"))(pretrain)


def _supervised(config: Path | None, out: Path, steps, batch_size, lr, threads, seed,
                max_steps, device, max_wall_s) -> None:
    import torch
    from rich.console import Console


    cfg = load_config(SupervisedConfig, config, steps=steps, batch_size=batch_size, lr=lr,
                      seed=seed)
    torch.set_num_threads(int(threads or 1))
    console = Console(stderr=True)
    path = run_supervised(cfg, out, max_steps=max_steps, progress=console.print, device=device,
                          max_wall_s=max_wall_s)
    Console().print(f"encoder: {path}")
