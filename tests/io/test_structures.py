"""Atomic models through gemmi: zyx coordinates, PDB = mmCIF, element inference, chains."""

from __future__ import annotations

import gzip

import gemmi
import numpy as np
import pytest

from cryoframe import InputError
from cryoframe.data import structure_path
from cryoframe.io.structures import read_structure


def test_read_bundled_pdb_zyx():
    atoms = read_structure(structure_path("1AKE"))
    st = gemmi.read_structure(str(structure_path("1AKE")))
    first = st[0][0][0][0]
    assert len(atoms) == st[0].count_atom_sites()
    assert np.allclose(atoms.coords_zyx_angstrom[0], [first.pos.z, first.pos.y, first.pos.x])
    assert atoms.atom_names[0] == first.name and atoms.residue_names[0] == "MET"
    assert set(atoms.elements) >= {"C", "N", "O", "S"}
    assert np.all((atoms.occupancies >= 0) & (atoms.occupancies <= 1))
    assert atoms.b_factors.mean() > 1


def test_mmcif_gz_matches_pdb(tmp_path):
    pdb = read_structure(structure_path("1AKE"))
    st = gemmi.read_structure(str(structure_path("1AKE")))
    cif = tmp_path / "1ake.cif.gz"
    with gzip.open(cif, "wt") as fh:
        fh.write(st.make_mmcif_document().as_string())
    atoms = read_structure(cif)
    assert np.allclose(atoms.coords_zyx_angstrom, pdb.coords_zyx_angstrom)
    assert (atoms.elements == pdb.elements).all() and (atoms.chain_ids == pdb.chain_ids).all()
    assert (atoms.residue_numbers == pdb.residue_numbers).all()


def test_chain_selection_and_unknown_chain():
    path = structure_path("3J9I")
    full = read_structure(path)
    sub = read_structure(path, chains=["S", "Z"])
    assert set(sub.chain_ids) == {"S", "Z"}
    assert len(sub) == int(np.isin(full.chain_ids, ["S", "Z"]).sum())
    with pytest.raises(InputError) as ei:
        read_structure(path, chains="nope")
    assert ei.value.field == "chains" and "'S'" in ei.value.expected


def test_elements_inferred_without_element_column(tmp_path):
    lines = [
        "ATOM      1  N   MET A   1      -5.640 -18.566   6.685  1.00  0.00",
        "ATOM      2  CA  MET A   1      -4.640 -18.566   6.685  1.00 10.00",
        "ATOM      3  SD  MET A   1      -3.640 -18.566   6.685  1.00 10.00",
        "HETATM    4 FE   HEM A   2      -2.640 -18.566   6.685  0.50 10.00",
        "HETATM    5 CA    CA B   3      -1.640 -18.566   6.685  1.00 10.00",
        "ATOM      6  H   MET A   1      -0.640 -18.566   6.685  1.00 10.00",
        "END",
    ]
    p = tmp_path / "noel.pdb"
    p.write_text("\n".join(lines) + "\n")
    atoms = read_structure(p)
    # chain A first (file order within it), then chain B
    assert atoms.atom_names.tolist() == ["N", "CA", "SD", "FE", "H", "CA"]
    assert atoms.elements.tolist() == ["N", "C", "S", "Fe", "H", "Ca"]  # CA: carbon vs calcium
    assert atoms.atomic_numbers.tolist() == [7, 6, 16, 26, 1, 20]
    assert atoms.occupancies[3] == 0.5
    assert len(read_structure(p, hydrogens=False)) == 5


def test_hydrogens_optional_on_bundled():
    with_h = read_structure(structure_path("4AKE_A"))
    no_h = read_structure(structure_path("4AKE_A"), hydrogens=False)
    n_h = int((with_h.elements == "H").sum())
    assert n_h > 1000 and len(no_h) == len(with_h) - n_h and "H" not in set(no_h.elements)


def test_bad_structure_input(tmp_path):
    with pytest.raises(InputError, match="not found"):
        read_structure(tmp_path / "x.pdb")
    with pytest.raises(InputError) as ei:
        read_structure(structure_path("1AKE"), model=3)
    assert ei.value.field == "model"
