"""Protein backbone graph: one node per residue, peptide-bond and backbone H-bond edges.

Hydrogen bonds come from a real DSSP: the Kabsch–Sander electrostatic energy between the N–H of
one residue and the C=O of another (``MDAnalysis.analysis.dssp.pydssp_numpy.get_hbond_map``,
ideal amide hydrogens, E < −0.5 kcal/mol). Only bonds that belong to the template's secondary
structure are kept: both partners must be in a DSSP helix (H) or strand (E) assigned from the
same H-bond map (``assign``). In an α-helix these are the i → i+4 bonds (C=O of i, N–H of i+4).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from cryoframe._errors import InputError

__all__ = ["BackboneGraph", "backbone_hbonds", "build_backbone_graph"]


@dataclass
class BackboneGraph:
    """Undirected residue graph.

    Attributes
    ----------
    edge_index : Tensor
        `(2, n_edges)` both directions of every edge (torch-geometric layout).
    n_nodes : int
        Number of residues.
    peptide_pairs : np.ndarray
        `(n_pep, 2)` consecutive residue pairs (i, i+1).
    hbond_pairs : np.ndarray
        `(n_hb, 2)` (acceptor C=O residue, donor N–H residue) pairs kept as edges.
    secondary_structure : str
        DSSP 3-state string ('H', 'E', '-') of the template.
    """

    edge_index: torch.Tensor
    n_nodes: int
    peptide_pairs: np.ndarray
    hbond_pairs: np.ndarray
    secondary_structure: str


def backbone_hbonds(backbone_zyx_angstrom: np.ndarray, proline: np.ndarray | None = None
                    ) -> tuple[np.ndarray, str]:
    """DSSP backbone hydrogen bonds and 3-state secondary structure.

    Parameters
    ----------
    backbone_zyx_angstrom : np.ndarray
        `(n_res, 4, 3)` N, CA, C, O coordinates (Å; any consistent axis order).
    proline : np.ndarray of bool, optional
        `(n_res,)` residues without an amide hydrogen (PRO), excluded as donors.

    Returns
    -------
    hbonds : np.ndarray
        `(n_hb, 2)` (acceptor i: C=O, donor j: N–H) residue pairs with E < −0.5 kcal/mol.
    ss : str
        DSSP 3-state assignment per residue.
    """
    from MDAnalysis.analysis.dssp import pydssp_numpy as dssp

    coord = np.asarray(backbone_zyx_angstrom, dtype=np.float64)
    if coord.ndim != 3 or coord.shape[1:] != (4, 3):
        raise InputError(f"backbone must be (n_res, 4, 3), got {coord.shape}", field="backbone",
                         expected="N, CA, C, O coordinates per residue")
    donor = None if proline is None else (~np.asarray(proline, dtype=bool)).astype(int)
    hmap = dssp.get_hbond_map(coord, donor_mask=donor)  # [donor N-H j, acceptor C=O i]
    onehot = dssp.assign(coord, donor_mask=donor)  # (n, 3) loop / helix / strand
    ss = "".join("-HE"[k] for k in np.argmax(onehot, axis=1))
    donors, acceptors = np.nonzero(hmap > 0.5)
    return np.stack([acceptors, donors], axis=1), ss


def build_backbone_graph(backbone_zyx_angstrom: np.ndarray,
                         residue_names: list[str] | None = None) -> BackboneGraph:
    """Residue graph of the template: peptide bonds + secondary-structure H-bonds (DSSP).

    Parameters
    ----------
    backbone_zyx_angstrom : np.ndarray
        `(n_res, 4, 3)` N, CA, C, O of the template.
    residue_names : list of str, optional
        Three-letter names (prolines are not H-bond donors).

    Returns
    -------
    BackboneGraph
    """
    n = int(np.asarray(backbone_zyx_angstrom).shape[0])
    pro = None
    if residue_names is not None:
        pro = np.array([r.strip().upper() == "PRO" for r in residue_names])
    hb, ss = backbone_hbonds(backbone_zyx_angstrom, pro)
    in_ss = np.array([c in "HE" for c in ss])
    keep = in_ss[hb[:, 0]] & in_ss[hb[:, 1]] if len(hb) else np.zeros(0, bool)
    hb = hb[keep]
    pep = np.stack([np.arange(n - 1), np.arange(1, n)], axis=1)
    pairs = np.concatenate([pep, hb], axis=0)
    pairs = np.unique(np.sort(pairs, axis=1), axis=0)
    pairs = pairs[pairs[:, 0] != pairs[:, 1]]
    edge = np.concatenate([pairs, pairs[:, ::-1]], axis=0).T
    return BackboneGraph(
        edge_index=torch.as_tensor(np.ascontiguousarray(edge), dtype=torch.long),
        n_nodes=n, peptide_pairs=pep, hbond_pairs=hb, secondary_structure=ss,
    )
