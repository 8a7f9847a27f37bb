"""``cryoframe hetero simulate | train | evaluate``: heterogeneous atomic reconstruction."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

from cryoframe._record import write_run_record
from cryoframe.cli import _options as opt
from cryoframe.data import structure_path, trajectory_paths
from cryoframe.geometry.rotations import so3_grid
from cryoframe.hetero.dataset import load_dataset, save_dataset
from cryoframe.hetero.ensemble import load_template
from cryoframe.hetero.graph import build_backbone_graph
from cryoframe.hetero.images import ImagingConfig, simulate_images
from cryoframe.hetero.outputs import (
    pick_models_along_pc1,
    plot_latents,
    plot_rmsd_histogram,
    write_ca_models_pdb,
    write_results_star,
)
from cryoframe.hetero.rmsd import kabsch_rmsd
from cryoframe.hetero.run import load_trained_run, template_tensor
from cryoframe.hetero.train import TrainConfig, predict_conformations, train_autodecoder


def _template_path(spec: str) -> Path:

    p = Path(spec)
    return p if p.exists() else structure_path(spec)


def _write_record(out: Path, name: str, payload: dict) -> None:
    write_run_record(out / name, f"hetero {Path(name).stem}", payload)


def hetero_simulate(
    out: Path = typer.Option(..., "--out", help="Dataset folder to write."),
    trajectory: str = typer.Option("adk_dims", help="Bundled trajectory: adk_dims, adk_dims2."),
    topology_file: Path = typer.Option(None, "--topology", help="Own topology (PSF/PDB)."),
    trajectory_file: Path = typer.Option(None, "--trajectory-file",
                                         help="Own trajectory (DCD/XTC); none: multi-model."),
    template: str = typer.Option("1AKE", help="Template: bundled ID or PDB/mmCIF path."),
    chain: str = typer.Option("A", help="Template chain."),
    n_per_conformation: int = typer.Option(10, help="Images per conformation."),
    stride: int = typer.Option(1, help="Use every stride-th frame of the trajectory."),
    box_px: int = typer.Option(64, help="Image size (px)."),
    pixel_size_angstrom: float = opt.pixel_size(help="Pixel size (Å).", default=2.0),
    dose: float = typer.Option(100.0, help="Dose (e/Å²) setting the shot noise."),
    snr: float = typer.Option(None, help="Target SNR instead of the dose."),
    defocus_um: float = typer.Option(2.0, help="Mean defocus (µm, underfocus)."),
    defocus_spread_um: float = typer.Option(0.5, help="Half-width of the defocus spread (µm)."),
    seed: int = typer.Option(0, help="Seed of poses, defoci and noise."),
) -> None:
    """Simulate all-atom images (CTF + noise) of every frame of an ensemble."""
    from rich.progress import Progress

    from cryoframe.hetero.ensemble import load_ensemble, load_template

    console = Console()
    tmpl = load_template(_template_path(template), chain)
    if topology_file is not None:
        top, trj = topology_file, trajectory_file
    else:
        top, trj = trajectory_paths(trajectory)
    ens = load_ensemble(top, trj, tmpl, stride=stride)
    cfg = ImagingConfig(box_px=box_px, pixel_size_angstrom=pixel_size_angstrom,
                        dose_e_per_angstrom2=dose, snr=snr,
                        defocus_mean_angstrom=defocus_um * 1e4,
                        defocus_halfwidth_angstrom=defocus_spread_um * 1e4)
    total = ens.n_conformations * n_per_conformation
    with Progress(transient=True) as bar:
        task = bar.add_task("simulating", total=total)
        data = simulate_images(ens, n_per_conformation, cfg, seed=seed,
                               progress=lambda k: bar.update(task, completed=k))
    save_dataset(out, data, ens)
    _write_record(out, "simulate.json", {"template": str(_template_path(template)),
                                         "chain": chain, "source": ens.source, "seed": seed})
    console.print(f"wrote {total} images of {ens.n_conformations} conformations to {out} "
                  f"(SNR {data.snr:.3f}, noise std {data.noise_std:.4f})")


def hetero_train(
    dataset: Path = typer.Argument(..., help="Dataset folder (particles.star + .mrcs)."),
    out: Path = typer.Option(..., "--out", help="Run folder (checkpoints, results)."),
    template: str = typer.Option("1AKE", help="Template: bundled ID or PDB/mmCIF path."),
    chain: str = typer.Option("A", help="Template chain."),
    decoder: str = typer.Option("gnn", help="gnn or mlp."),
    poses: str = typer.Option("known", help="known (from the STAR file) or esl."),
    no_r2: bool = typer.Option(False, "--no-r2", help="Switch off the R2 regulariser."),
    epochs: int = typer.Option(100, help="Epochs."),
    batch_size: int = typer.Option(64, help="Mini-batch size."),
    grid_step_deg: float = typer.Option(10.0, help="ESL SO(3) grid step (degrees)."),
    seed: int = typer.Option(0, help="Seed of initialisation and batching."),
    resume: bool = typer.Option(False, "--resume", help="Continue from out/checkpoint.pt."),
) -> None:
    """Fit the autodecoder (GCN or MLP) to the images, with known or ESL-estimated poses."""
    console = Console()
    data = load_dataset(dataset)
    tmpl = load_template(_template_path(template), chain, data.imaging.voltage_kv)
    graph = build_backbone_graph(tmpl.backbone_zyx_angstrom, tmpl.residue_names)
    cfg = TrainConfig(decoder=decoder, poses=poses, use_r2=not no_r2, epochs=epochs,
                      batch_size=batch_size, seed=seed, esl_grid_step_deg=grid_step_deg)
    out.mkdir(parents=True, exist_ok=True)
    _write_record(out, "run.json", {"dataset": str(dataset.resolve()),
                                    "template": str(_template_path(template)),
                                    "chain": chain, "train": cfg.model_dump()})
    truth = data.per_image_truth()
    res = train_autodecoder(data.images, data.defocus_angstrom, data.noise_std, data.imaging,
                            tmpl, graph, cfg, rotations=data.rotations,
                            ground_truth_ca=truth, out_dir=out, resume=resume)
    line = f"trained {cfg.decoder} ({res.n_weights} weights) in {res.wall_s:.0f} s"
    if truth is not None:
        start = kabsch_rmsd(
            template_tensor(tmpl)[None].expand(truth.shape[0], -1, -1), truth).mean()
        line += (f"; mean C-alpha RMSD {float(res.rmsd_angstrom.mean()):.2f} Å "
                 f"(template {float(start):.2f} Å)")
    console.print(line)
    console.print(f"checkpoint: {out / 'checkpoint.pt'}; run 'cryoframe hetero evaluate {out}'")


def hetero_evaluate(
    run: Path = typer.Argument(..., help="Run folder written by 'hetero train'."),
    n_models: int = typer.Option(20, help="Models in the PDB (along latent PC1)."),
) -> None:
    """Write predicted models (multi-model PDB), latent plot, RMSD histogram, per-image STAR."""
    console = Console()
    trained = load_trained_run(run)
    data, tmpl, cfg, state_support = (trained.data, trained.template, trained.config,
                                      trained.support)
    dec, lat = trained.decoder, trained.latents
    pred = predict_conformations(dec, lat)
    z = lat.table.weight.detach()
    picks = pick_models_along_pc1(z, n_models)
    write_ca_models_pdb(run / "models.pdb", pred[picks].numpy(), tmpl.residue_numbers,
                        tmpl.residue_names)
    truth = data.per_image_truth()
    rmsd = None
    if truth is not None:
        rmsd = kabsch_rmsd(pred, truth).numpy()
        start = kabsch_rmsd(template_tensor(tmpl)[None].expand(truth.shape[0], -1, -1), truth)
        plot_rmsd_histogram(run / "rmsd_histogram.png",
                            {"template": start.numpy(), "prediction": rmsd})
    plot_latents(run / "latents.png", z,
                 None if data.conformation is None else data.conformation.numpy(),
                 "true conformation index")
    rotations = None
    if cfg["poses"] == "esl" and state_support is not None:

        rotations = so3_grid(cfg["esl_grid_step_deg"])[state_support[:, 0]]
    write_results_star(run / "particles_hetero.star", data.table, z, rotations, rmsd)
    msg = f"wrote models.pdb ({len(picks)} models), latents.png, particles_hetero.star"
    if rmsd is not None:
        msg += f", rmsd_histogram.png; mean C-alpha RMSD {rmsd.mean():.2f} Å"
    console.print(msg)


def register(app: typer.Typer) -> None:
    """Add the ``hetero`` command group."""
    hetero = typer.Typer(help="Heterogeneous atomic reconstruction with a protein GNN "
                              "(simulate images of an ensemble, train, evaluate).",
                         no_args_is_help=True)

    hetero.command("simulate", epilog=opt.example(
        "cryoframe hetero simulate --out adk_data --n-per-conformation 10"))(hetero_simulate)
    hetero.command("train", epilog=opt.example(
        "cryoframe hetero train adk_data --out adk_run --epochs 100"))(hetero_train)
    hetero.command("evaluate", epilog=opt.example(
        "cryoframe hetero evaluate adk_run --n-models 20"))(hetero_evaluate)

    app.add_typer(hetero, name="hetero")

