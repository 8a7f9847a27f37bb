"""Simulator vs forward model, pose search, and the ``cryoframe hetero`` CLI end to end."""

from __future__ import annotations

import gemmi
import numpy as np
import pytest
import torch

from cryoframe.cli.main import main
from cryoframe.data import structure_path, trajectory_paths
from cryoframe.geometry.rotations import so3_grid
from cryoframe.hetero.ensemble import load_ensemble, load_template
from cryoframe.hetero.forward import ResidueForwardModel
from cryoframe.hetero.images import ImagingConfig, ctf_stack, simulate_images
from cryoframe.hetero.poses import (
    bin_images,
    coarse_to_fine_search,
    expected_discrepancy,
    grid_search,
)
from cryoframe.hetero.rmsd import kabsch_rmsd


@pytest.fixture(scope="module")
def adk():
    tmpl = load_template(structure_path("1AKE"), "A")
    ens = load_ensemble(*trajectory_paths("adk_dims"), tmpl, stride=12)
    return tmpl, ens


def test_template_and_ensemble_correspond(adk):
    tmpl, ens = adk
    assert tmpl.n_residues == 214 and ens.ca_zyx_angstrom.shape[1:] == (214, 3)
    assert list(ens.residue_numbers[:3]) == [1, 2, 3]
    # consecutive C-alpha distances of a real protein
    d = np.linalg.norm(np.diff(tmpl.ca_zyx_angstrom, axis=0), axis=1)
    assert 3.7 < np.median(d) < 3.9
    # 1AKE is the closed end of the DIMS transition: close to the first frame, far from the last
    r = kabsch_rmsd(torch.as_tensor(ens.ca_zyx_angstrom),
                    torch.as_tensor(tmpl.ca_zyx_angstrom)[None].expand(ens.n_conformations, -1, -1))
    assert float(r[0]) < 1.5 < 5.0 < float(r[-1])
    # the regularisers vanish at the real template and not at a trajectory frame
    from cryoframe.hetero.losses import r1_bonds, r2_log_distance

    x0 = torch.as_tensor(tmpl.ca_zyx_angstrom, dtype=torch.float32)
    assert float(r1_bonds(x0[None], x0)) == 0.0 and float(r2_log_distance(x0[None], x0)) == 0.0
    last = torch.as_tensor(ens.ca_zyx_angstrom[-1:])
    assert float(r2_log_distance(last, x0)) > 1.0
    # frames are superposed onto the template frame (no residual rotation)
    first = torch.as_tensor(ens.ca_zyx_angstrom[0], dtype=torch.float64)
    plain = (first - torch.as_tensor(tmpl.ca_zyx_angstrom)).pow(2).sum(-1).mean().sqrt()
    assert abs(float(plain) - float(r[0])) < 1e-3


def test_all_atom_images_match_residue_model_better_at_truth(adk):
    """Independent simulator: the coarse model fits the truth better than the template."""
    tmpl, ens = adk
    cfg = ImagingConfig(box_px=48, pixel_size_angstrom=2.5, snr=1e6)
    data = simulate_images(ens, 2, cfg, seed=1)
    assert data.images.shape == (2 * ens.n_conformations, 48, 48)
    model = ResidueForwardModel(tmpl.amplitude_rad_angstrom2, tmpl.sigma_angstrom, 48, 2.5)
    ctf = ctf_stack(cfg, data.defocus_angstrom)
    truth = torch.as_tensor(ens.ca_zyx_angstrom)[data.conformation]
    x0 = torch.as_tensor(tmpl.ca_zyx_angstrom, dtype=torch.float32)[None].expand_as(truth)
    with torch.no_grad():
        at_truth = model(truth, data.rotations, ctf)
        at_template = model(x0, data.rotations, ctf)
    y = data.images
    corr = ((at_truth * y).sum((-2, -1))
            / (at_truth.norm(dim=(-2, -1)) * y.norm(dim=(-2, -1))))
    assert float(corr.mean()) > 0.9  # same physics (scale, CTF sign, pose convention)
    err_truth = ((y - at_truth) ** 2).sum((-2, -1))
    err_tmpl = ((y - at_template) ** 2).sum((-2, -1))
    far = kabsch_rmsd(truth, x0) > 3.0
    assert bool((err_truth[far] < err_tmpl[far]).all())


def test_grid_search_recovers_pose_and_measure_concentrates(adk):
    tmpl, _ = adk
    grid = so3_grid(30.0)
    cfg = ImagingConfig(box_px=32, pixel_size_angstrom=4.0)
    model = ResidueForwardModel(tmpl.amplitude_rad_angstrom2, tmpl.sigma_angstrom, 32, 4.0)
    x = torch.as_tensor(tmpl.ca_zyx_angstrom, dtype=torch.float32)[None].expand(2, -1, -1)
    truth_idx = torch.tensor([17, 400])
    ctf = ctf_stack(cfg, torch.tensor([18000.0, 22000.0]))
    with torch.no_grad():
        y = model(x, grid[truth_idx], ctf)
    ctf_bin = ctf_stack(cfg, torch.tensor([18000.0, 22000.0]), 16, 8.0)
    idx, d = grid_search(model, x, bin_images(y, 2), ctf_bin, grid, j0=5, bin_factor=2)
    assert torch.equal(idx[:, 0], truth_idx)
    assert bool((d[:, 0] <= d[:, 1]).all())
    # two-level search lands on the exact fine-grid pose (noise-free images)
    fine = so3_grid(15.0)
    fine_idx = torch.tensor([123, 2500])
    with torch.no_grad():
        y2 = model(x, fine[fine_idx], ctf)
    levels = {2: ctf_bin, 1: ctf}
    idx2, _ = coarse_to_fine_search(model, x, y2, levels, grid, fine, j0=5, coarse_bin=2,
                                    fine_bin=1, n_coarse=3, n_neighbours=30)
    assert torch.equal(idx2[:, 0], fine_idx)
    loss, w = expected_discrepancy(model, x, y, ctf, grid[idx])
    assert bool((w[:, 0] == w.max(dim=1).values).all())
    torch.testing.assert_close(w.sum(1), torch.ones(2))


def test_cli_simulate_train_evaluate(tmp_path):
    data_dir, run = tmp_path / "data", tmp_path / "run"
    assert main(["hetero", "simulate", "--out", str(data_dir), "--n-per-conformation", "1",
                 "--box-px", "32", "--pixel-size", "4.0", "--seed", "3", "--stride", "7"]) == 0
    assert (data_dir / "particles.star").exists() and (data_dir / "particles.mrcs").exists()
    assert main(["hetero", "train", str(data_dir), "--out", str(run), "--decoder", "mlp",
                 "--epochs", "2", "--batch-size", "8"]) == 0
    assert main(["hetero", "train", str(data_dir), "--out", str(run), "--decoder", "mlp",
                 "--epochs", "3", "--batch-size", "8", "--resume"]) == 0
    state = torch.load(run / "checkpoint.pt", weights_only=True)
    assert state["epoch"] == 3 and [h["epoch"] for h in state["history"]] == [1, 2, 3]
    assert main(["hetero", "evaluate", str(run), "--n-models", "5"]) == 0
    st = gemmi.read_structure(str(run / "models.pdb"))
    assert len(st) == 5 and all(m.count_atom_sites() == 214 for m in st)
    from cryoframe.io.star import read_particles

    table = read_particles(run / "particles_hetero.star").particles
    assert len(table) == 14 and "rlnCryoframeLatent8" in table.columns
    rmsd = table["rlnCryoframeRmsdAngst"].to_numpy()
    assert 0.3 < rmsd.mean() < 8.0  # 3 epochs barely move off the template (≈ 4.5 Å)
    assert (run / "latents.png").stat().st_size > 1000
    assert (run / "rmsd_histogram.png").stat().st_size > 1000
    assert main(["hetero", "evaluate", str(tmp_path)]) == 2  # not a run folder: one-line error


@pytest.mark.slow
def test_cli_train_evaluate_with_estimated_poses(tmp_path):
    data_dir, esl = tmp_path / "data", tmp_path / "esl"
    assert main(["hetero", "simulate", "--out", str(data_dir), "--n-per-conformation", "1",
                 "--box-px", "32", "--pixel-size", "4.0", "--seed", "3", "--stride", "7"]) == 0
    assert main(["hetero", "train", str(data_dir), "--out", str(esl), "--poses", "esl",
                 "--epochs", "1", "--batch-size", "14", "--grid-step-deg", "15"]) == 0
    assert main(["hetero", "evaluate", str(esl), "--n-models", "2"]) == 0
    from cryoframe.io.star import read_particles

    est = read_particles(esl / "particles_hetero.star").particles
    true = read_particles(data_dir / "particles.star").particles
    assert len(est) == 14 and np.isfinite(est["rlnCryoframeRmsdAngst"]).all()
    assert not np.allclose(est["rlnAngleTilt"], true["rlnAngleTilt"])  # estimated poses written
