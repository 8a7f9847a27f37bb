"""Rotations, Euler conventions, fftfreq grids and batched rigid transforms.

Conventions (the single place they are written down)
-----------------------------------------------------
* Arrays are indexed ``(z, y, x)`` exactly as mrcfile returns them; coordinate vectors inside
  cryoframe are zyx too. xyz only appears at the file boundary (RELION/Dynamo/PDB).
* A rotation is a ``(..., 3, 3)`` **active** matrix ``R`` that left-multiplies zyx column
  vectors: ``v' = R @ v``.
* Volumes rotate about the box centre ``c = n // 2`` along each axis (the voxel that holds the
  DC term after ``fftshift``, the RELION/teamtomo choice).
* A particle with pose ``R`` (and no shift) is the reference rotated actively by ``R``::

      particle(x) = reference(Rᵀ (x − c) + c)

  so a feature at ``c + u`` in the reference sits at ``c + R u`` in the particle.
* Converting an xyz-acting matrix ``A`` to cryoframe's zyx form is ``P A P`` with the
  anti-diagonal permutation ``P`` (it swaps the z and x components).
* RELION's ``(rot, tilt, psi)`` give ``A = Euler_angles2matrix(rot, tilt, psi)`` which maps
  reference to particle coordinates in xyz; the pose is ``R = P A P``. Dynamo's
  ``(tdrot, tilt, narot)`` give the pose ``R = P Dᵀ P`` with ``D = Rz(narot) Rx(tilt) Rz(tdrot)``
  (see :mod:`cryoframe.geometry.euler` for the derivation and the checked equivalent pair).
* Frequencies are in cycles/pixel, ``fftfreq`` order (DC first, not fftshifted) unless a name
  says ``shifted``.
"""

from cryoframe.geometry import euler, grids, rotations, transforms

__all__ = ["euler", "grids", "rotations", "transforms"]
