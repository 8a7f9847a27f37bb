"""Heterogeneous atomic reconstruction with a protein graph neural network (paper 002).

Modules, in the order data flows:

* :mod:`~cryoframe.hetero.ensemble` — MD trajectories / multi-model files (MDAnalysis) and the
  C-alpha template with per-residue amplitudes and widths;
* :mod:`~cryoframe.hetero.images` — all-atom particle images with CTF and shot noise;
* :mod:`~cryoframe.hetero.dataset` — dataset folder (MRCS + RELION STAR + ground truth);
* :mod:`~cryoframe.hetero.graph` — backbone graph from DSSP hydrogen bonds;
* :mod:`~cryoframe.hetero.forward` — residue-Gaussian forward model (projection + CTF);
* :mod:`~cryoframe.hetero.decoders` — latent table, GCN and MLP autodecoders;
* :mod:`~cryoframe.hetero.losses` — data term and the R0 / R1 / R2 regularisers;
* :mod:`~cryoframe.hetero.poses` — ESL-style measure lifting over an SO(3) grid;
* :mod:`~cryoframe.hetero.rmsd` — C-alpha RMSD after optimal superposition;
* :mod:`~cryoframe.hetero.train` — training loop with checkpoints;
* :mod:`~cryoframe.hetero.outputs` — multi-model PDB, plots, per-image STAR.
"""
