"""Writing simulated particles as an MRCS stack + RELION 3.1 STAR (optics + particles blocks)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from cryoframe.io.mrc import write_mrc
from cryoframe.io.star import ParticleTable, particles_with_poses, write_particles

if TYPE_CHECKING:
    from cryoframe.simulate.particles2d import SimulatedParticles

def write_particle_stack(sim: SimulatedParticles, out_star: str | Path) -> Path:
    """Write ``sim`` as ``<stem>.mrcs`` + RELION 3.1 STAR (optics + particles blocks).

    Poses and shifts go through :func:`cryoframe.io.star.particles_with_poses` (RELION Euler
    angles; ``rlnOriginX/YAngst`` = −shift), CTF parameters per particle (``rlnPhaseShift`` = 0
    always written: cryoDRGN 4.3 silently builds NaN CTFs without it), pixel size, voltage,
    Cs and amplitude contrast in the optics group.
    """
    import pandas as pd


    out_star = Path(out_star)
    stack = out_star.with_suffix(".mrcs")
    write_mrc(stack, sim.images.numpy(), sim.pixel_size_angstrom, image_stack=True)
    n = sim.images.shape[0]
    cfg = sim.config
    optics_values = {
        "rlnOpticsGroupName": "opticsGroup1", "rlnAmplitudeContrast": cfg.amplitude_contrast,
        "rlnSphericalAberration": cfg.cs_mm, "rlnVoltage": cfg.voltage_kv,
        "rlnImagePixelSize": sim.pixel_size_angstrom, "rlnImageSize": int(sim.images.shape[-1]),
        "rlnImageDimensionality": 2,
    }
    optics = pd.DataFrame({"rlnOpticsGroup": [1], **{k: [v] for k, v in optics_values.items()}})
    parts = pd.DataFrame({
        "rlnImageName": [f"{i + 1:06d}@{stack.name}" for i in range(n)],
        "rlnDefocusU": sim.defocus_u_angstrom.numpy().astype(np.float64),
        "rlnDefocusV": sim.defocus_v_angstrom.numpy().astype(np.float64),
        "rlnDefocusAngle": sim.defocus_angle_deg.numpy().astype(np.float64),
        "rlnCtfBfactor": np.full(n, float(cfg.b_factor_angstrom2)),
        # always written (0 without a phase plate): cryoDRGN 4.3 builds NaN CTFs without it
        "rlnPhaseShift": np.zeros(n),
        "rlnOriginXAngst": np.zeros(n), "rlnOriginYAngst": np.zeros(n),
        "rlnOpticsGroup": np.ones(n, dtype=np.int64),
    })
    for k, v in optics_values.items():
        parts[k] = v
    table = ParticleTable(particles=parts, optics=optics, optics_columns=tuple(optics_values),
                          optics_block="optics")
    shifts = torch.zeros(n, 3, dtype=torch.float64)
    shifts[:, 1:] = sim.shifts_yx_angstrom.to(torch.float64)
    table.particles = particles_with_poses(table, sim.rotations.to(torch.float64), shifts)
    write_particles(out_star, table)
    return out_star
