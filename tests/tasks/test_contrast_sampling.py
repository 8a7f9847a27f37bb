"""Regression tests of issue 15: contrast, sampling, --class, run records, embed output.

Subtomograms here have the *physical* contrast (protein dark at low frequency: the map is
multiplied by a CTF whose first lobe is negative, then wedge-filtered and noised), and the
reference is the positive density, as an EMDB map or ``simulate structures`` gives.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
import torch

from cryoframe.baselines.fft_align import wedge_mask
from cryoframe.cli.main import main
from cryoframe.data import map_path
from cryoframe.fourier.contrast import contrast_relation, map_contrast_relation
from cryoframe.fourier.filters import fourier_crop
from cryoframe.geometry.grids import radial_frequency
from cryoframe.geometry.rotations import geodesic_distance_deg, random_rotations
from cryoframe.geometry.transforms import rotate_volumes, shift_volumes_fourier
from cryoframe.io.mrc import read_mrc, write_mrc
from cryoframe.io.star import poses_from_particles, read_particles, write_star

N = 16
PX = 20.0


def _template(name: str, n: int = N) -> torch.Tensor:
    d = torch.as_tensor(read_mrc(map_path(name)).data, dtype=torch.float32)
    c = d.shape[0] // 2
    return fourier_crop(d[c - 16:c + 16, c - 16:c + 16, c - 16:c + 16], n)


def _physical(v: torch.Tensor, px: float) -> torch.Tensor:
    """Apply an isotropic CTF (3 µm underfocus, 300 kV, 10 % amplitude contrast, physical sign:
    negative at low frequency) and the ±60° wedge."""
    n = v.shape[-1]
    k = radial_frequency((n, n, n), rfft=True) / px
    chi = math.pi * 0.019687 * 30000.0 * k**2
    ctf = -(math.sqrt(1 - 0.01) * torch.sin(chi) + 0.1 * torch.cos(chi))
    w = wedge_mask((n, n, n))[..., : n // 2 + 1]
    return torch.fft.irfftn(torch.fft.rfftn(v, dim=(-3, -2, -1)) * ctf * w, s=(n, n, n),
                            dim=(-3, -2, -1))


@pytest.fixture(scope="module")
def dark(tmp_path_factory):
    """16 subtomograms of 1U6G / 1BXN with the physical contrast, classes 1/2 in the STAR."""
    root = tmp_path_factory.mktemp("dark")
    gen = torch.Generator().manual_seed(1)
    maps = [_template("1U6G"), _template("1BXN")]
    n = 16
    cls = np.arange(n) % 2
    rots = random_rotations(n, generator=gen)
    shifts = torch.rand(n, 3, generator=gen) - 0.5
    rows = []
    for i in range(n):
        v = _physical(shift_volumes_fourier(rotate_volumes(maps[cls[i]], rots[i]), shifts[i]), PX)
        v = v + 0.2 * v.std() * torch.randn(v.shape, generator=gen)
        name = f"sub/p{i:03d}.mrc"
        write_mrc(root / name, v.numpy(), PX)
        rows.append({"rlnImageName": name, "rlnClassNumber": int(cls[i]) + 1})
    star = root / "particles.star"
    write_star(star, {"particles": pd.DataFrame(rows)})
    write_mrc(root / "ref_positive.mrc", maps[0].numpy(), PX)
    return root, star, cls, rots, shifts, maps


def test_contrast_relation_detects_the_sign(dark):
    root, star, cls, _, _, maps = dark
    vols = torch.stack([torch.as_tensor(read_mrc(root / f"sub/p{i:03d}.mrc").data)
                        for i in range(len(cls)) if cls[i] == 0])
    rel = contrast_relation(vols, maps[0])
    assert rel.sign == -1 and rel.correlation < -0.8, rel
    assert contrast_relation(-vols, maps[0]).sign == 1
    assert map_contrast_relation(maps[0], -maps[0]).sign == -1
    assert map_contrast_relation(maps[0], maps[0]).sign == 1


def _align(dark, tmp_path, *extra):
    root, star, cls, rots, shifts, _ = dark
    out = tmp_path / "aligned.star"
    code = main(["align", str(star), "--class", "1", "--reference",
                 str(root / "ref_positive.mrc"), "--out", str(out), "--step-deg", "30",
                 *extra])
    assert code == 0
    r, t = poses_from_particles(read_particles(out), pixel_size_angstrom=PX)
    err = geodesic_distance_deg(r.float(), rots[cls == 0])
    return float(err.median()), out


def test_align_detects_opposite_contrast(dark, tmp_path):
    med, out = _align(dark, tmp_path)
    assert med < 15.0, med  # before issue 15: the positive reference was used as is
    rec = json.loads(next(out.parent.glob("align_run_*.json")).read_text())
    assert rec["config"]["reference_sign"] == -1 and rec["config"]["class"] == 1
    # --class 1 kept only class-1 rows
    assert len(read_particles(out).particles) == int((dark[2] == 0).sum())


def test_align_without_contrast_handling_fails_and_switches_work(dark, tmp_path):
    med_off, _ = _align(dark, tmp_path, "--no-auto-contrast")
    med_inv, _ = _align(dark, tmp_path, "--invert-data")
    assert med_off > 30.0, med_off  # the silent failure the issue reported
    assert med_inv < 15.0, med_inv


def test_average_ground_truth_uses_the_detected_sign(dark, tmp_path):
    root, star, *_ = dark
    out = tmp_path / "avg"
    assert main(["average", str(star), "--class", "1", "--out", str(out), "--step-deg", "40",
                 "--max-iterations", "2", "--ground-truth", str(root / "ref_positive.mrc")]) == 0
    recs = list(out.glob("average_run_*.json"))
    assert len(recs) == 1
    cfg = json.loads(recs[0].read_text())["config"]
    assert cfg["ground_truth_sign"] == -1
    # a correct map against the (inverted) truth is far better than the box (320 Å here)
    assert cfg["res_vs_gt_angstrom"] < 0.5 * N * PX, cfg["res_vs_gt_angstrom"]
    # a second run writes a second record instead of overwriting the first
    assert main(["average", str(star), "--class", "1", "--out", str(out), "--step-deg", "40",
                 "--max-iterations", "2"]) == 0
    assert len(list(out.glob("average_run_*.json"))) == 2


def test_fsc_against_inverted_reference(tmp_path, capsys):
    m = _template("1U6G", 24).numpy()
    write_mrc(tmp_path / "a.mrc", m, 10.0)
    write_mrc(tmp_path / "b.mrc", -m, 10.0)
    assert main(["fsc", str(tmp_path / "a.mrc"), str(tmp_path / "b.mrc"), "--json"]) == 0
    res = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert res["sign_of_half2"] == -1 and res["nyquist_limited"]
    assert main(["fsc", str(tmp_path / "a.mrc"), str(tmp_path / "b.mrc"), "--json",
                 "--no-auto-contrast"]) == 0
    res = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert res["sign_of_half2"] == 1 and res["resolution_angstrom"] > 100


def test_template_matching_detects_contrast(dark):
    from cryoframe.baselines.template_match import template_match_scores

    root, star, cls, _, _, maps = dark
    vols = torch.stack([torch.as_tensor(read_mrc(root / f"sub/p{i:03d}.mrc").data)
                        for i in range(len(cls))])
    templates = torch.stack(maps)
    with pytest.warns(UserWarning, match="templates inverted"):
        s = template_match_scores(vols, templates, particle_mask=wedge_mask((N, N, N)))
    assert (s.argmax(1) == cls).mean() >= 0.8
    assert s.max(1).min() > 0


# ------------------------------------------------------------------ sampling


def test_resample_plan_for_odd_fine_box():
    from cryoframe.fourier.resample import plan_resample

    plan = plan_resample(91, 1.0, 10.0, 32)
    assert (plan.crop_in, plan.resized, plan.box_out) == (90, 9, 32)
    assert plan.sampling_error < 1e-9
    with pytest.raises(Exception, match="spans only"):
        plan_resample(16, 1.0, 10.0, 32)


@pytest.mark.parametrize("n", [16, 17])
def test_resample_round_trip_keeps_centre_and_values(n):
    from cryoframe.fourier.filters import fourier_pad
    from cryoframe.fourier.resample import plan_resample, resample_volumes

    v = _template("1U6G", n)
    if n % 2 == 0:  # no energy in the Nyquist planes (an even pad cannot keep it)
        v = fourier_pad(fourier_crop(v, n - 1), n)
    fine = torch.roll(fourier_pad(torch.roll(v, (-(n // 2),) * 3, (0, 1, 2)), 2 * n),
                      (n,) * 3, (0, 1, 2))  # same object at half the voxel size, centred
    back = resample_volumes(fine, plan_resample(2 * n, 5.0, 10.0, n))
    assert torch.allclose(back, v, atol=1e-4 * float(v.abs().max()))


def test_embed_resamples_instead_of_misreading(tmp_path):
    """A 64³ volume at 5 Å is the same object as its 32³ version at 10 Å for the encoder."""
    from cryoframe.fourier.filters import fourier_pad

    v = _template("1U6G", 32)
    fine = torch.roll(fourier_pad(torch.roll(v, (-16,) * 3, (0, 1, 2)), 64), (32,) * 3,
                      (0, 1, 2))
    write_mrc(tmp_path / "coarse.mrc", v.numpy(), 10.0)
    write_mrc(tmp_path / "fine.mrc", fine.numpy(), 5.0)
    write_mrc(tmp_path / "mislabelled.mrc", v.numpy(), 5.0)  # 32³ at 5 Å: another object
    outs = {}
    for name in ("coarse", "fine", "mislabelled"):
        out = tmp_path / f"{name}.npz"
        assert main(["embed", str(tmp_path / f"{name}.mrc"), "--out", str(out)]) == 0
        z = np.load(out)  # plain arrays: no allow_pickle needed
        assert z["image_name"].dtype.kind == "U"
        assert float(z["voxel_size_angstrom"]) == {"coarse": 10.0}.get(name, 5.0)
        assert float(z["encoder_voxel_size_angstrom"]) == 10.0
        assert str(z["weights"]).endswith(".pt")
        outs[name] = z["embeddings"][0]

    def cos(a, b):
        return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))

    assert cos(outs["coarse"], outs["fine"]) > 0.99
    assert cos(outs["coarse"], outs["mislabelled"]) < cos(outs["coarse"], outs["fine"])


def test_embed_star_class_filter_and_table_pixel_size(dark, tmp_path):
    root, star, cls, *_ = dark
    out = tmp_path / "e.npz"
    assert main(["embed", str(star), "--class", "2", "--out", str(out)]) == 0
    z = np.load(out)
    assert z["embeddings"].shape[0] == int((cls == 1).sum())
    assert list(z["image_name"]) == [f"sub/p{i:03d}.mrc" for i in range(len(cls)) if cls[i] == 1]
    assert "resampled" in str(z["resampling"])  # 16³ at 20 Å → 32³ at 10 Å
    assert main(["embed", str(star), "--class", "7", "--out", str(out)]) == 2


def test_star_and_header_voxel_size_disagree(dark, tmp_path):
    root, star, *_ = dark
    df = read_particles(star).particles.copy()
    df["rlnImagePixelSize"] = 5.0
    df["rlnImageName"] = [str(root / n) for n in df["rlnImageName"]]
    bad = tmp_path / "bad.star"
    write_star(bad, {"particles": df})
    assert main(["cluster", str(bad), "-k", "2", "--out", str(tmp_path / "c.star"),
                 "--features", "invariant"]) == 2


def test_classify_reports_an_honest_estimate():
    """Labelled rows drawn from the easy region: the plain CV figure overstates the accuracy on
    the unlabelled rows; the importance-weighted estimate is close to it."""
    from cryoframe.tasks.classify import honest_accuracy, knn_classifier

    rng = np.random.default_rng(0)
    n = 1200
    emb = rng.normal(size=(n, 4))
    y_all = (emb[:, 0] > 0).astype(int)
    hard = emb[:, 1] > 0
    flip = hard & (rng.random(n) < 0.4)
    y_all[flip] = 1 - y_all[flip]
    p_lab = np.where(hard, 0.05, 0.5)
    labelled = rng.random(n) < p_lab
    from sklearn.model_selection import cross_val_predict

    y = y_all[labelled]
    cv_pred = cross_val_predict(knn_classifier(emb[labelled], y, 15), emb[labelled], y, cv=5)
    model = knn_classifier(emb[labelled], y, 15)
    true_unl = 100 * float((model.predict(emb[~labelled]) == y_all[~labelled]).mean())
    est = honest_accuracy(cv_pred == y, emb, labelled, y)
    assert est.cv_percent - true_unl > 10  # the overstatement the issue reported
    assert abs(est.unlabelled_percent - true_unl) < 0.5 * (est.cv_percent - true_unl)
    lo, hi = est.unlabelled_ci95
    assert lo - 3 < true_unl < hi + 3
    assert est.shift_auc > 0.65 and "not representative" in est.describe()


def test_classify_and_cluster_cli_state_estimate_and_sampling(dark, tmp_path):
    root, star, cls, *_ = dark
    df = read_particles(star).particles.copy()
    df["rlnImageName"] = [str(root / n) for n in df["rlnImageName"]]
    df.loc[8:, "rlnClassNumber"] = 0  # half labelled
    lab = tmp_path / "half.star"
    write_star(lab, {"particles": df})
    out = tmp_path / "classified.star"
    assert main(["classify", str(lab), "--out", str(out), "--features", "invariant",
                 "--protocol", "knn", "--folds", "2"]) == 0
    rec = json.loads(next(tmp_path.glob("classify_run_*.json")).read_text())["config"]
    est = rec["accuracy_estimate"]
    assert est["unlabelled_percent"] is not None and len(est["cv_ci95"]) == 2
    assert est["cv_ci95"][0] <= est["cv_percent"] <= est["cv_ci95"][1]
    # the encoder path resamples 16³ at 20 Å to the encoder's 32³ at 10 Å instead of refusing
    assert main(["cluster", str(lab), "-k", "2", "--out", str(tmp_path / "c.star")]) == 0


def test_align_resamples_a_finer_reference(dark, tmp_path):
    """A 32³ reference at 10 Å against 16³ data at 20 Å: resampled, not refused or misread."""
    root, star, cls, rots, *_ = dark
    fine = tmp_path / "ref_10A.mrc"
    write_mrc(fine, _template("1U6G", 32).numpy(), 10.0)
    out = tmp_path / "aligned.star"
    assert main(["align", str(star), "--class", "1", "--reference", str(fine), "--out",
                 str(out), "--step-deg", "30"]) == 0
    r, _ = poses_from_particles(read_particles(out), pixel_size_angstrom=PX)
    assert float(geodesic_distance_deg(r.float(), rots[cls == 0]).median()) < 15.0


def test_embed_uses_a_91_box_at_1_angstrom(tmp_path):
    """The issue's case: a 91³ volume at 1 Å is resampled (90³ → 9³ at 10 Å, padded to 32³)."""
    g = torch.Generator().manual_seed(0)
    write_mrc(tmp_path / "v91.mrc", torch.randn(91, 91, 91, generator=g).numpy(), 1.0)
    out = tmp_path / "e.npz"
    assert main(["embed", str(tmp_path / "v91.mrc"), "--out", str(out)]) == 0
    z = np.load(out)
    assert "90³" in str(z["resampling"]) and "9³" in str(z["resampling"])
    assert np.isfinite(z["embeddings"]).all()


@pytest.mark.slow
def test_average_five_91_boxes():
    """The issue's failing call: five 91³ subtomograms (coarse search box 45)."""
    from cryoframe.baselines.fft_align import FFTAligner
    from cryoframe.tasks.average import average_subtomograms

    g = torch.Generator().manual_seed(0)
    res = average_subtomograms(torch.randn(5, 91, 91, 91, generator=g),
                               FFTAligner(step_deg=90, refine_steps=1), max_iterations=1,
                               min_iterations=1, random_pose_control=False)
    assert res.map.shape == (91, 91, 91)


@pytest.mark.parametrize("aligner", ["learned", "posterior"])
def test_average_learned_aligners_work_at_the_model_sampling(dark, tmp_path, aligner):
    root, star, *_ = dark
    out = tmp_path / f"avg_{aligner}"
    # 16³ at 20 Å/voxel is averaged at the models' 32³ and 10 Å/voxel
    assert main(["average", str(star), "--class", "1", "--out", str(out), "--aligner",
                 aligner, "--max-iterations", "2"]) == 0
    m = read_mrc(out / "map.mrc")
    assert m.data.shape == (32, 32, 32) and abs(m.voxel_size_angstrom - 10.0) < 1e-3
