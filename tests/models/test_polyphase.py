"""Polyphase decomposition: components, rolls, phase permutations under shifts and rotations."""

import pytest
import torch

from cryoframe.models.polyphase import (
    patchify,
    phase_offsets,
    phase_permutation,
    polyphase_components,
    roll_to_phase,
    rot90_about_center,
)

PATCH = (4, 4, 4)


def test_components_are_strided_slices():
    x = torch.randn(2, 1, 16, 16, 16)
    comps = polyphase_components(x, PATCH)
    assert comps.shape == (2, 1, 64, 4, 4, 4)
    for k, (p, q, r) in enumerate(phase_offsets(PATCH).tolist()):
        assert torch.equal(comps[:, :, k], x[:, :, p::4, q::4, r::4])


def test_roll_to_phase_matches_torch_roll():
    x = torch.randn(3, 2, 16, 16, 16)
    off = torch.tensor([[1, 2, 3], [0, 0, 0], [3, 1, 2]])
    out = roll_to_phase(x, off)
    for b in range(3):
        ref = torch.roll(x[b], tuple((-off[b]).tolist()), dims=(-3, -2, -1))
        assert torch.equal(out[b], ref)


def test_shift_permutes_phases():
    g = (1, -2, 5)
    perm = phase_permutation((16, 16, 16), PATCH, lambda v: torch.roll(v, g, (-3, -2, -1)))
    offs = phase_offsets(PATCH)
    expected = ((offs + torch.tensor(g)) % 4 * torch.tensor([16, 4, 1])).sum(-1)
    assert torch.equal(perm, expected)


def test_rot90_about_center_fixes_center_and_is_a_rotation():
    x = torch.zeros(1, 16, 16, 16)
    x[0, 8, 8, 8] = 1.0
    assert torch.equal(rot90_about_center(x, 1, (-3, -1)), x)
    y = torch.randn(1, 16, 16, 16)
    assert torch.equal(rot90_about_center(y, 4, (-2, -1)), y)
    # point (z, y, x) = (8, 8, 11) → quarter turn in the (y, x) plane
    x = torch.zeros(16, 16, 16)
    x[8, 8, 11] = 1.0
    moved = rot90_about_center(x, 1, (-2, -1)).nonzero()[0].tolist()
    assert moved == [8, 5, 8]


def test_rotation_phase_map_is_a_permutation():
    perm = phase_permutation((16, 16, 16), PATCH,
                             lambda v: rot90_about_center(v, 1, (-3, -2)))
    assert sorted(perm.tolist()) == list(range(64))
    assert perm[0] == 0  # the phase of the rotation centre (8 ≡ 0 mod 4) is fixed


def _shear(v):
    return torch.stack([torch.roll(v[..., z, :, :], z // 4, dims=-1) for z in range(v.shape[-3])], -3)


def test_transform_mixing_phases_is_rejected():
    with pytest.raises(ValueError, match="does not map"):
        phase_permutation((16, 16, 16), PATCH, _shear)


def test_patchify_layout():
    x = torch.arange(8**3, dtype=torch.float32).reshape(1, 1, 8, 8, 8)
    p = patchify(x, (4, 4, 4))
    assert p.shape == (1, 8, 64)
    assert torch.equal(p[0, 1], x[0, 0, :4, :4, 4:].reshape(-1))


def test_indivisible_box_raises():
    with pytest.raises(ValueError, match="divisible"):
        polyphase_components(torch.randn(1, 1, 10, 10, 10), PATCH)
