"""``cryoframe pretrain --config cfg.yaml``: NRCL pretraining of the APT-ViT pair encoder.

YAML (keys of :class:`cryoframe.train.loop.PretrainConfig`) → flag overrides → one call to
:func:`cryoframe.train.loop.run_pretrain`. Re-running the same command resumes from the run
folder's ``checkpoint.pt``. Under ``torchrun --nproc_per_node N`` each process trains on its own
slice of every epoch (gloo on CPU, NCCL on GPU).
"""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    """Add the ``pretrain`` command."""

    @app.command("pretrain")
    def pretrain(
        config: Path = typer.Option(None, "--config", "-c", help="YAML config file."),
        out: Path = typer.Option(Path("pretrain_out"), "--out", help="Run folder."),
        steps: int = typer.Option(None, "--steps", help="Total optimisation steps."),
        batch_size: int = typer.Option(None, "--batch-size", help="Per-process batch size."),
        lr: float = typer.Option(None, "--lr", help="Peak learning rate (default √(B/512)·1e-5)."),
        threads: int = typer.Option(None, "--threads", help="torch CPU threads."),
        max_wall_s: float = typer.Option(None, "--max-wall-s", help="Stop after this wall time."),
        seed: int = typer.Option(None, "--seed", help="Run seed."),
        store: Path = typer.Option(None, "--store", help="Train from this CryoEngine store."),
    ) -> None:
        """Pretrain with NRCL (resumes automatically from OUT/checkpoint.pt)."""
        from rich.console import Console

        from cryoframe.train.loop import load_pretrain_config, run_pretrain

        cfg = load_pretrain_config(config, steps=steps, batch_size=batch_size, lr=lr,
                                   threads=threads, max_wall_s=max_wall_s, seed=seed)
        if store is not None:
            cfg = cfg.model_copy(update={"data": cfg.data.model_copy(
                update={"kind": "store", "store_path": str(store)})})
        summary = run_pretrain(cfg, out)
        from cryoframe.cli._subtomos import run_record

        run_record(out, "pretrain", {"config": cfg.model_dump(mode="json"),
                                     "start_step": summary.get("start_step"),
                                     "steps_done": summary.get("steps_done")})
        Console().print(
            f"steps {summary['start_step']}→{summary['steps_done']}, "
            f"{summary['samples_per_s']:.2f} samples/s "
            f"(network only {summary['net_samples_per_s']:.2f}), "
            f"k-NN {summary.get('knn_acc', float('nan')):.1f} %, encoder: {out / 'encoder.pt'}")
