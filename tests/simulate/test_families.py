import numpy as np

from cryoframe.data import structure_path
from cryoframe.io.structures import read_structure
from cryoframe.simulate.families import chain_masses, structure_family


def test_family_variants_keep_mass_and_differ():
    atoms = read_structure(structure_path("1BXN"), hydrogens=False, waters=False)
    total = sum(chain_masses(atoms).values())
    fam = structure_family(atoms, 6, seed=4, parent_name="1BXN")
    sigs = set()
    for v in fam:
        kept = sum(chain_masses(v.atoms).values())
        assert kept >= 0.7 * total - 1e-6
        assert abs(v.provenance["mass_fraction"] - kept / total) < 1e-9
        assert set(v.provenance["removed_chains"]).isdisjoint(set(v.atoms.chain_ids))
        sigs.add((tuple(v.provenance["removed_chains"]),
                  float(np.round(v.atoms.coords_zyx_angstrom.sum(), 3))))
    assert len(sigs) == 6
    again = structure_family(atoms, 6, seed=4, parent_name="1BXN")
    assert [a.provenance for a in again] == [v.provenance for v in fam]
    moved = [v for v in fam if v.provenance["rigid_body_motions"]]
    assert moved
    # rigid motions keep intra-chain distances
    v = moved[0]
    c = next(iter(v.provenance["rigid_body_motions"]))
    a0 = atoms.coords_zyx_angstrom[atoms.chain_ids == c]
    a1 = v.atoms.coords_zyx_angstrom[v.atoms.chain_ids == c]
    d0 = np.linalg.norm(a0[:50, None] - a0[None, :50], axis=-1)
    d1 = np.linalg.norm(a1[:50, None] - a1[None, :50], axis=-1)
    np.testing.assert_allclose(d0, d1, atol=1e-6)
