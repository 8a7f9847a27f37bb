"""Electron-optical constants used by the hetero simulator and forward model."""

from __future__ import annotations

from cryoframe.fourier.ctf import electron_wavelength_angstrom

__all__ = ["electron_wavelength_angstrom", "relativistic_gamma",
           "interaction_scale_rad_per_angstrom"]

_M0C2_EV = 510_998.95  # electron rest energy (eV)


def relativistic_gamma(voltage_kv: float) -> float:
    """Lorentz factor γ = 1 + eU / m0c² (1.587 at 300 kV)."""
    return 1.0 + voltage_kv * 1e3 / _M0C2_EV


def interaction_scale_rad_per_angstrom(voltage_kv: float) -> float:
    """λ·γ in Å: the phase (rad·Å²) of an atom per Å of electron scattering factor ``f_e``.

    The 2D Fourier transform of the phase shift of one atom is ``λ γ f_e(|k|)`` (weak-phase,
    projection approximation), so its integrated phase is ``λ γ f_e(0)``.
    """
    return electron_wavelength_angstrom(voltage_kv) * relativistic_gamma(voltage_kv)
