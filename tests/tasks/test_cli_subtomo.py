"""The subtomogram commands end to end on a tiny synthetic data set (16³, two classes)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from cryoframe.baselines.fft_align import wedge_mask
from cryoframe.cli.main import main
from cryoframe.data import map_path
from cryoframe.fourier.filters import fourier_crop
from cryoframe.geometry.rotations import geodesic_distance_deg, random_rotations
from cryoframe.geometry.transforms import rotate_volumes, shift_volumes_fourier
from cryoframe.io.mrc import read_mrc, write_mrc
from cryoframe.io.star import poses_from_particles, read_particles, write_star

N = 16
PX = 20.0


def _template(name: str) -> torch.Tensor:
    d = torch.as_tensor(read_mrc(map_path(name)).data, dtype=torch.float32)
    c = d.shape[0] // 2
    return fourier_crop(d[c - 16:c + 16, c - 16:c + 16, c - 16:c + 16], N)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """24 wedge-filtered noisy subtomograms of 1U6G / 1BXN, half of them labelled."""
    root = tmp_path_factory.mktemp("subtomos")
    gen = torch.Generator().manual_seed(0)
    maps = [_template("1U6G"), _template("1BXN")]
    n = 24
    cls = np.arange(n) % 2
    rots = random_rotations(n, generator=gen)
    shifts = torch.rand(n, 3, generator=gen) - 0.5
    w = wedge_mask((N, N, N))
    rows = []
    for i in range(n):
        v = shift_volumes_fourier(rotate_volumes(maps[cls[i]], rots[i]), shifts[i])
        v = torch.fft.irfftn(torch.fft.rfftn(v) * w[..., : N // 2 + 1], s=(N, N, N))
        v = v + 0.3 * v.std() * torch.randn(v.shape, generator=gen)
        name = f"sub/p{i:03d}.mrc"
        write_mrc(root / name, v.numpy(), PX)
        rows.append({"rlnImageName": name, "rlnClassNumber": int(cls[i]) + 1 if i < 12 else 0,
                     "rlnAngleRot": 0.0, "rlnAngleTilt": 0.0, "rlnAnglePsi": 0.0})
    star = root / "particles.star"
    write_star(star, {"particles": pd.DataFrame(rows)})
    write_mrc(root / "ref.mrc", maps[0].numpy(), PX)
    return root, star, cls, rots, shifts


def test_classify_and_cluster(dataset, tmp_path):
    root, star, cls, _, _ = dataset
    out = tmp_path / "classified.star"
    assert main(["classify", str(star), "--out", str(out), "--features", "invariant",
                 "--protocol", "linear", "--folds", "3"]) == 0
    pred = read_particles(out).particles["rlnClassNumber"].to_numpy() - 1
    assert (pred[12:] == cls[12:]).mean() > 0.8          # unlabelled rows
    assert out.with_suffix(".confusion.png").stat().st_size > 1000
    probs = pd.read_csv(out.with_suffix(".probabilities.csv"))
    assert np.allclose(probs[["class_1", "class_2"]].sum(1), 1.0)
    outc = tmp_path / "clusters.star"
    assert main(["cluster", str(star), "-k", "2", "--out", str(outc), "--features", "invariant",
                 "--plot", "pca"]) == 0
    lab = read_particles(outc).particles["rlnClassNumber"].to_numpy()
    # k-means quality is tested on embeddings in test_classify; here: the command's output
    assert set(lab) == {1, 2}
    assert outc.with_suffix(".clusters.png").stat().st_size > 1000
    # unknown protocol: one clear error, exit status 2
    assert main(["classify", str(star), "--out", str(out), "--features", "invariant",
                 "--protocol", "svm"]) == 2


def _pose_errors(star, rots, shifts):
    """Rotation errors (degrees) and shift errors (voxels of the data) of a STAR's poses."""
    r, t_angst = poses_from_particles(read_particles(star), pixel_size_angstrom=PX)
    return (geodesic_distance_deg(r.float(), rots),
            (t_angst.float() / PX - shifts).norm(dim=1))


def test_align_writes_relion_poses(dataset, tmp_path):
    root, star, cls, rots, shifts = dataset
    sub = tmp_path / "one_class.star"
    df = read_particles(star).particles
    df = df[cls == 0].copy()
    df["rlnImageName"] = [str(root / n) for n in df["rlnImageName"]]
    write_star(sub, {"particles": df})
    out = tmp_path / "aligned.star"
    assert main(["align", str(sub), "--reference", str(root / "ref.mrc"), "--out", str(out),
                 "--step-deg", "30"]) == 0
    err, shift_err = _pose_errors(out, rots[cls == 0], shifts[cls == 0])
    assert float(err.median()) < 10.0, err
    assert float(shift_err.median()) < 1.0


def test_average_writes_maps_star_and_fsc(dataset, tmp_path):
    root, star, cls, _, _ = dataset
    out = tmp_path / "avg"
    assert main(["average", str(star), "--out", str(out), "--step-deg", "40",
                 "--max-iterations", "1"]) == 0
    for name in ("half1.mrc", "half2.mrc", "map.mrc", "fsc.png", "particles.star"):
        assert (out / name).stat().st_size > 0, name
    assert len(list(out.glob("average_run_*.json"))) == 1  # one record per run
    m = read_mrc(out / "map.mrc")
    assert m.data.shape == (N, N, N) and abs(m.voxel_size_angstrom - PX) < 1e-3
    subsets = read_particles(out / "particles.star").particles["rlnRandomSubset"]
    assert sorted(set(subsets)) == [1, 2]


def test_align_with_the_posterior_aligner(dataset, tmp_path):
    root, star, cls, rots, shifts = dataset
    sub = tmp_path / "one_class.star"
    df = read_particles(star).particles
    df = df[cls == 0].copy()
    # the shipped head was trained at SNR 0.004-0.2: bring the data into that range (SNR 0.2)
    gen = torch.Generator().manual_seed(5)
    names = []
    for name in df["rlnImageName"]:
        v = torch.as_tensor(read_mrc(root / name).data, dtype=torch.float32)
        v = v + (v.std() / 0.2**0.5) * torch.randn(v.shape, generator=gen)
        names.append(str(tmp_path / name.replace("/", "_")))
        write_mrc(names[-1], v.numpy(), PX)
    df["rlnImageName"] = names
    write_star(sub, {"particles": df})
    out = tmp_path / "aligned.star"
    # 16³ at 20 Å/voxel is resampled to the head's 32³ at 10 Å/voxel; poses come back in Å
    assert main(["align", str(sub), "--reference", str(root / "ref.mrc"), "--out", str(out),
                 "--aligner", "posterior"]) == 0
    err, shift_err = _pose_errors(out, rots[cls == 0], shifts[cls == 0])
    assert float(err.median()) < 20.0, err  # a broken search is near 100°
    assert float(shift_err.median()) < 1.0
    conf = read_particles(out).particles["rlnMaxValueProbDistribution"].to_numpy()
    assert np.all((conf >= 0) & (conf <= 1.0 + 1e-6))



def test_average_with_the_posterior_aligner_beats_random_poses(dataset, tmp_path):
    import json

    out = tmp_path / "avg_posterior"
    assert main(["average", str(dataset[1]), "--class", "1", "--aligner", "posterior",
                 "--max-iterations", "2", "--out", str(out)]) == 0
    rec = json.loads(next(out.glob("average_run_*.json")).read_text())["config"]
    # poses that mean something beat the same particles averaged at random poses (measured:
    # 41.0 against 51.4 Å; the FFT search at 30° reaches 45.3 against 48.8 Å on these 6)
    res = rec["history"][-1]["res_halfmap_angstrom"]
    assert res < 0.9 * rec["res_random_pose_control_angstrom"], rec
