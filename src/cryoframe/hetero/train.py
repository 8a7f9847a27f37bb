"""Training loop of the heterogeneous autodecoder (paper Algorithm 1).

Adam (lr 1e-3, PyTorch defaults) on decoder weights and per-image latents, learning rate scaled by
``min(epoch / 20, 1)``; mini-batches cover all images every epoch. With known poses the data
term is ``||y − F(φ_i, x_i)||²``; with ``poses="esl"`` it is the expected discrepancy over the
lifted measure of :mod:`cryoframe.hetero.poses`. Checkpoints (decoder, latents, optimiser,
measure supports, history) are written atomically every ``checkpoint_every`` epochs and at the
end; ``resume=True`` continues from ``out_dir/checkpoint.pt``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Literal

import torch
from pydantic import PositiveFloat, PositiveInt

from cryoframe._config import FrozenConfig
from cryoframe._errors import InputError
from cryoframe.geometry.rotations import so3_grid
from cryoframe.hetero.decoders import LatentTable, count_weights, load_decoder_state, make_decoder
from cryoframe.hetero.ensemble import Template
from cryoframe.hetero.forward import ResidueForwardModel
from cryoframe.hetero.graph import BackboneGraph
from cryoframe.hetero.images import ImagingConfig, ctf_stack
from cryoframe.hetero.losses import RegularizerWeights, regularizer, warmup_factor
from cryoframe.hetero.poses import bin_images, coarse_to_fine_search, expected_discrepancy
from cryoframe.hetero.rmsd import kabsch_rmsd
from cryoframe.train.checkpoint import load_state, save_state

__all__ = ["TrainConfig", "TrainResult", "train_autodecoder", "predict_conformations"]


class TrainConfig(FrozenConfig):
    """Hyperparameters (defaults: paper, supplement §3–§6; epochs scaled to a CPU)."""

    decoder: Literal["gnn", "mlp"] = "gnn"
    use_r2: bool = True
    poses: Literal["known", "esl"] = "known"
    epochs: PositiveInt = 100
    batch_size: PositiveInt = 64
    lr: PositiveFloat = 1e-3
    warmup_epochs: PositiveInt = 20
    latent_dim: PositiveInt = 8
    latent_init_std: PositiveFloat = 0.1
    seed: int = 0
    lambda0: float = 5e-4
    lambda1: float = 0.01
    lambda2: float = 0.01
    omega: float = 0.25
    esl_j0: PositiveInt = 15
    esl_eta: PositiveFloat = 2.0 / 3.0
    esl_grid_step_deg: PositiveFloat = 10.0
    esl_coarse_step_deg: PositiveFloat = 30.0
    esl_search_bin: PositiveInt = 4
    esl_fine_bin: PositiveInt = 2
    esl_data_bin: PositiveInt = 1
    esl_n_coarse: PositiveInt = 4
    esl_n_neighbours: PositiveInt = 40
    esl_search_every: PositiveInt = 10
    data_term: Literal["mean", "sum"] = "mean"
    checkpoint_every: PositiveInt = 10
    log_rmsd_every: PositiveInt = 5


@dataclass
class TrainResult:
    """Trained decoder and latents, per-epoch history and final per-image predictions."""

    decoder: torch.nn.Module
    latents: LatentTable
    history: list[dict] = field(default_factory=list)
    predicted: torch.Tensor | None = None  # (m, n_res, 3)
    rmsd_angstrom: torch.Tensor | None = None  # (m,)
    support: torch.Tensor | None = None  # (m, J0) grid indices (ESL)
    weights: torch.Tensor | None = None  # (m, J0)
    n_weights: int = 0
    wall_s: float = 0.0


@torch.no_grad()
def predict_conformations(decoder: torch.nn.Module, latents: LatentTable,
                          batch_size: int = 256) -> torch.Tensor:
    """`(m, n_res, 3)` conformations of every image (Å, zyx)."""
    m = latents.table.num_embeddings
    out = [decoder(latents(torch.arange(s, min(m, s + batch_size))))
           for s in range(0, m, batch_size)]
    return torch.cat(out)


def train_autodecoder(
    images: torch.Tensor,
    defocus_angstrom: torch.Tensor,
    noise_std: float,
    imaging: ImagingConfig,
    template: Template,
    graph: BackboneGraph,
    config: TrainConfig,
    rotations: torch.Tensor | None = None,
    ground_truth_ca: torch.Tensor | None = None,
    out_dir: str | Path | None = None,
    resume: bool = False,
    show_progress: bool = True,
    decoder_factory: Callable[..., torch.nn.Module] = make_decoder,
) -> TrainResult:
    """Fit decoder + latents to the images.

    Parameters
    ----------
    images : Tensor
        `(m, h, w)` contrast images.
    defocus_angstrom : Tensor
        `(m,)` defocus per image.
    noise_std : float
        Noise standard deviation of ``images`` (the data term is in units of its square).
    imaging : ImagingConfig
        Microscope parameters (CTF, pixel size, padding).
    template : Template
        C-alpha template and residue amplitudes / widths.
    graph : BackboneGraph
        Backbone graph of the template (GNN decoder).
    config : TrainConfig
    rotations : Tensor, optional
        `(m, 3, 3)` known poses (required for ``poses="known"``).
    ground_truth_ca : Tensor, optional
        `(m, n_res, 3)` true C-alpha trace per image: RMSD is logged per epoch when given.
    out_dir : str or Path, optional
        Checkpoint folder.
    resume : bool
        Continue from ``out_dir/checkpoint.pt`` if present.
    show_progress : bool
        Rich progress bar.
    decoder_factory : callable
        ``(kind, template_zyx_angstrom, edge_index, latent_dim) → decoder``; default
        :func:`cryoframe.hetero.decoders.make_decoder` (experiments pass their own variant).

    Returns
    -------
    TrainResult
    """
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn


    t0 = time.perf_counter()
    m = images.shape[0]
    if config.poses == "known" and rotations is None:
        raise InputError("known-pose training needs the poses", field="rotations",
                         expected="(m, 3, 3) rotations or poses='esl'")
    if images.shape[-1] != imaging.box_px or images.shape[-2] != imaging.box_px:
        raise InputError(f"images are {tuple(images.shape[-2:])}, config says {imaging.box_px}",
                         field="box_px", expected="matching image size")
    torch.manual_seed(config.seed)
    x0 = torch.as_tensor(template.ca_zyx_angstrom, dtype=torch.float32)
    decoder = decoder_factory(config.decoder, x0, graph.edge_index, config.latent_dim)
    latents = LatentTable(m, config.latent_dim, config.latent_init_std)
    model = ResidueForwardModel(template.amplitude_rad_angstrom2, template.sigma_angstrom,
                                imaging.box_px, imaging.pixel_size_angstrom)
    params = list(decoder.parameters()) + list(latents.parameters())
    opt = torch.optim.Adam(params, lr=config.lr)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda e: warmup_factor(e + 1, config.warmup_epochs))
    weights = RegularizerWeights(config.lambda0, config.lambda1,
                                 config.lambda2 if config.use_r2 else 0.0, config.omega)
    y = images.to(torch.float32)
    ctf = ctf_stack(imaging, defocus_angstrom)
    esl = config.poses == "esl"
    if esl:
        nb = config.esl_search_bin
        for f in (nb, config.esl_fine_bin, config.esl_data_bin):
            if imaging.box_px % (2 * f):
                raise InputError("box must be divisible by twice the search binning",
                                 field="esl_search_bin",
                                 expected=f"a divisor of {imaging.box_px // 2}")
        grid = so3_grid(config.esl_grid_step_deg)  # support lives on this (fine) grid
        coarse = so3_grid(config.esl_coarse_step_deg)
        ctf_levels = {f: ctf_stack(imaging, defocus_angstrom, imaging.box_px // f,
                                   imaging.pixel_size_angstrom * f)
                      for f in {nb, config.esl_fine_bin, config.esl_data_bin}}
        db = config.esl_data_bin
        y_data = bin_images(y, db)  # expected discrepancy on this grid (noise std / db)
        support = torch.zeros(m, config.esl_j0, dtype=torch.long)
    history: list[dict] = []
    start_epoch = 1
    ckpt = Path(out_dir) / "checkpoint.pt" if out_dir is not None else None
    state = load_state(ckpt) if resume else None
    if state is not None:
        load_decoder_state(decoder, state, ckpt)
        latents.load_state_dict(state["latents"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        history = state["history"]
        start_epoch = state["epoch"] + 1
        if esl:
            support = state["support"]

    def save(epoch: int) -> None:
        if ckpt is None:
            return
        save_state(ckpt, {"decoder": decoder.state_dict(), "latents": latents.state_dict(),
                          "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
                          "history": history, "epoch": epoch,
                          "config": config.model_dump(mode="json"),
                          "support": support if esl else None})

    gen = torch.Generator().manual_seed(config.seed)
    columns = [TextColumn("{task.description}"), BarColumn(), TextColumn("{task.fields[info]}"),
               TimeRemainingColumn()]
    with Progress(*columns, disable=not show_progress, transient=True) as bar:
        task = bar.add_task(f"{config.decoder} {config.poses}", total=config.epochs,
                            completed=start_epoch - 1, info="")
        for epoch in range(start_epoch, config.epochs + 1):
            if esl and (epoch - 1) % config.esl_search_every == 0:
                coords = predict_conformations(decoder, latents)
                for s0 in range(0, m, 64):
                    sl = slice(s0, min(m, s0 + 64))
                    support[sl], _ = coarse_to_fine_search(
                        model, coords[sl], y[sl], {f: c[sl] for f, c in ctf_levels.items()},
                        coarse, grid, config.esl_j0, nb, config.esl_fine_bin,
                        config.esl_n_coarse, config.esl_n_neighbours)
            perm = torch.randperm(m, generator=gen)
            total_data, total_reg = 0.0, 0.0
            for s in range(0, m, config.batch_size):
                idx = perm[s:s + config.batch_size]
                x = decoder(latents(idx))
                if esl:
                    data, _ = expected_discrepancy(model, x, y_data[idx], ctf_levels[db][idx],
                                                   grid[support[idx]], config.esl_eta, db)
                    data = data * db**2 / noise_std**2  # binned noise std is noise_std / db
                    n_pix = (imaging.box_px // db) ** 2
                else:
                    pred = model(x, rotations[idx], ctf[idx])
                    data = ((pred - y[idx]) ** 2).sum(dim=(-2, -1)) / noise_std**2
                    n_pix = imaging.box_px**2
                if config.data_term == "mean":
                    data = data / n_pix
                reg = regularizer(x, x0, weights)
                loss = (data + reg).mean()
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                total_data += float(data.detach().sum())
                total_reg += float(reg.detach().sum())
            sched.step()
            row = {"epoch": epoch, "data": total_data / m, "reg": total_reg / m,
                   "lr": opt.param_groups[0]["lr"], "time_s": time.perf_counter() - t0}
            if ground_truth_ca is not None and (epoch % config.log_rmsd_every == 0
                                                or epoch == config.epochs):
                row["rmsd"] = float(kabsch_rmsd(predict_conformations(decoder, latents),
                                                ground_truth_ca).mean())
            history.append(row)
            bar.update(task, advance=1, info=f"data {row['data']:.1f} " + (
                f"rmsd {row['rmsd']:.2f} Å" if "rmsd" in row else ""))
            if epoch % config.checkpoint_every == 0:
                save(epoch)
    save(config.epochs)
    pred = predict_conformations(decoder, latents)
    res = TrainResult(decoder=decoder, latents=latents, history=history, predicted=pred,
                      n_weights=count_weights(decoder), wall_s=time.perf_counter() - t0)
    if ground_truth_ca is not None:
        res.rmsd_angstrom = kabsch_rmsd(pred, ground_truth_ca).to(torch.float32)
    if esl:
        res.support = support
        with torch.no_grad():
            res.weights = torch.cat([
                expected_discrepancy(model, pred[s0:s0 + 32], y_data[s0:s0 + 32],
                                     ctf_levels[db][s0:s0 + 32], grid[support[s0:s0 + 32]],
                                     config.esl_eta, db)[1]
                for s0 in range(0, m, 32)])
    return res
