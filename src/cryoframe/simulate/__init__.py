"""cryoframe.simulate: CryoEngine (App. C of the subtomogram foundation-model paper) and 2D particles.

Subtomogram path, one concept per module:

- :mod:`~cryoframe.simulate.density` — atomic model → Coulomb potential map (gemmi form factors);
- :mod:`~cryoframe.simulate.families` — compositional/conformational variants of one model;
- :mod:`~cryoframe.simulate.scene` — Poisson-disk placement with Shoemake poses;
- :mod:`~cryoframe.simulate.projector` — Fourier-space rotation/projection of one density;
- :mod:`~cryoframe.simulate.tiltseries` — tilt series (per-particle projection, drift, CTF, dose);
- :mod:`~cryoframe.simulate.align_tilts` — phase-correlation tilt alignment;
- :mod:`~cryoframe.simulate.reconstruct` — weighted back-projection;
- :mod:`~cryoframe.simulate.extract` — 32³ boxes, masks, ground-truth pose and offset;
- :mod:`~cryoframe.simulate.noise` — calibrated noise at an exact SNR, regenerated on the fly;
- :mod:`~cryoframe.simulate.fastpath` — per-particle fast path for pretraining scale;
- :mod:`~cryoframe.simulate.config`, :mod:`~cryoframe.simulate.engine` — configs, orchestration
  into a resumable, shardable :class:`cryoframe.io.store.SubtomoStore`.

2D particles: :mod:`~cryoframe.simulate.particles2d`, :mod:`~cryoframe.simulate.junk2d`.
Submodules are imported on demand (nothing heavy at package import).
"""
