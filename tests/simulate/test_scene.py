import numpy as np
import pytest
from scipy.spatial.distance import pdist

from cryoframe import InputError
from cryoframe.simulate.scene import exclusion_radius_px, make_scene, poisson_disk_centres


def test_no_two_particles_overlap_and_all_inside():
    sc = make_scene((200, 500, 500), 3, n_particles=400, seed=1)
    r_ex = exclusion_radius_px(32, 3)
    assert r_ex == 19
    assert len(sc) == 400
    assert pdist(sc.centres_zyx_px).min() >= r_ex
    c = sc.centres_zyx_px
    assert np.all(c >= r_ex) and np.all(c <= np.array([199, 499, 499]) - r_ex)
    # poses are rotations, classes cover all ids
    R = sc.rotations
    assert np.allclose(R @ R.transpose(0, 2, 1), np.eye(3), atol=1e-10)
    assert np.allclose(np.linalg.det(R), 1.0)
    assert set(sc.class_ids.tolist()) == {0, 1, 2}
    # uniform SO(3): the mean rotation matrix vanishes
    assert np.abs(R.mean(0)).max() < 0.12


def test_occupancy_sets_the_count():
    sc = make_scene((100, 200, 200), 1, occupancy=0.2, seed=0)
    assert len(sc) == round(0.2 * 100 * 200 * 200 / 32**3)


def test_saturated_box_raises():
    with pytest.raises(InputError):
        poisson_disk_centres((60, 60, 60), 19.0, n=50, rng=np.random.default_rng(0),
                             max_failures=500)


def test_scene_table_has_angstrom_centres():
    sc = make_scene((96, 160, 160), 2, n_particles=5, voxel_size_angstrom=10.0, seed=2)
    df = sc.to_frame()
    assert np.allclose(df["centre_x_angstrom"], sc.centres_zyx_px[:, 2] * 10.0)
    assert np.allclose(df[["R00", "R11", "R22"]].to_numpy(),
                       sc.rotations[:, [0, 1, 2], [0, 1, 2]])
