"""cryoframe: foundation models for cryo-ET subtomograms and cryo-EM particle images.

Conventions (used everywhere in the package; see ``cryoframe.geometry`` for details):

- Arrays are indexed ``(z, y, x)``, the order mrcfile returns. Coordinate vectors inside the
  package are ``(z, y, x)`` as well; files in xyz order (PDB, RELION, Dynamo) are converted in
  :mod:`cryoframe.io`.
- A rotation is a ``(..., 3, 3)`` active matrix acting on ``(z, y, x)`` column vectors. Core code
  takes matrices, never Euler angles; Euler angles exist only at the I/O boundary under named
  conventions (RELION ZYZ, Dynamo ZXZ).
- Lengths in public APIs and files are in Å (names end in ``_angstrom``); kernels work in
  pixels/voxels (names end in ``_px``).
"""

from cryoframe._errors import CryoframeError, InputError

__version__ = "0.1.0"
__all__ = ["CryoframeError", "InputError", "__version__"]
