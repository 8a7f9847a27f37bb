"""Learned correlation head of the posterior aligner (:mod:`cryoframe.tasks.posterior_align`).

A small network that reads the two volumes' radial power spectra (inside the Fourier region
each samples) and returns what turns a wedge-constrained cross-correlation into a calibrated
posterior over poses:

* ``shell_weights`` `(B, 2, S)`: non-negative weights per Fourier shell (S = n // 2 + 1 integer
  shells of the full box), one set for the rotation search and one for the translation. Both
  volumes are filtered by their square root before the normalised correlation, so they act as
  matched filters that follow the pair's signal-to-noise ratio (the optimal weighting falls
  with the SSNR, which the power spectra reveal; a sharp translation peak wants more of the
  high shells than a smooth rotational likelihood does).
* ``log_kappa`` `(B, 3)`: concentrations of the Boltzmann posterior ``p ∝ exp(κ · cc)`` for
  the coarse and fine rotation levels and the translation.

A fixed prior over the rotation angle (``log_prior_angle``, one learned logit per angle bin of
``prior_bin_deg``) encodes the local range the head was trained on; the global range uses a
uniform prior and ignores it.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["SpectralCorrelationHead", "CORRELATION_HEAD_FORMAT"]

#: Format tag of saved correlation-head files (:func:`cryoframe.models.pretrained.read_weights`).
CORRELATION_HEAD_FORMAT = "cryoframe.correlation-head/1"


class SpectralCorrelationHead(nn.Module):
    """Spectra → shell weights and posterior concentrations.

    Parameters
    ----------
    box_px : int
        Box size ``n`` of the volumes (defines the ``n // 2 + 1`` shells).
    hidden : int
        Width of the two hidden layers.
    prior_bins : int
        Number of angle bins of the local-range rotation prior.
    prior_bin_deg : float
        Width of one prior bin (degrees).
    """

    def __init__(self, box_px: int = 32, hidden: int = 64, prior_bins: int = 10,
                 prior_bin_deg: float = 2.5) -> None:
        super().__init__()
        self.box_px = int(box_px)
        self.n_shells = self.box_px // 2 + 1
        self.hidden = int(hidden)
        self.prior_bin_deg = float(prior_bin_deg)
        self.net = nn.Sequential(
            nn.Linear(2 * self.n_shells, hidden), nn.GELU(),
            nn.Linear(hidden, hidden), nn.GELU(),
            nn.Linear(hidden, 2 * self.n_shells + 3))
        nn.init.zeros_(self.net[-1].weight)
        with torch.no_grad():
            self.net[-1].bias.zero_()
            self.net[-1].bias[2 * self.n_shells:] = torch.log(torch.tensor([30.0, 60.0, 300.0]))
        self.log_prior_angle = nn.Parameter(torch.zeros(int(prior_bins)))

    def config(self) -> dict:
        """Constructor arguments (saved with the weights)."""
        return {"box_px": self.box_px, "hidden": self.hidden,
                "prior_bins": int(self.log_prior_angle.numel()),
                "prior_bin_deg": self.prior_bin_deg}

    def forward(self, log_power_particle: Tensor, log_power_reference: Tensor
                ) -> tuple[Tensor, Tensor]:
        """Shell weights `(B, 2, S)` (max 1 each) and log concentrations `(B, 3)` from `(B, S)`
        spectra.
        """
        x = torch.cat([log_power_particle, log_power_reference], -1)
        x = x - x.mean(-1, keepdim=True)  # overall scale carries no information
        out = self.net(x)
        s = self.n_shells
        w = torch.sigmoid(out[:, : 2 * s].reshape(-1, 2, s) + 2.0)
        w = w / w.amax(-1, keepdim=True).clamp_min(1e-6)
        return w, out[:, 2 * s:].clamp(-2.0, 10.0)

    def log_prior(self, angle_deg: Tensor) -> Tensor:
        """Log prior (unnormalised) of rotations at these angles from the identity (local range)."""
        k = (angle_deg / self.prior_bin_deg).long().clamp(0, self.log_prior_angle.numel() - 1)
        return self.log_prior_angle[k]
