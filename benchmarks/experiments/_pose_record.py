"""One JSON line of rotation-error figures, shared by the pose-accuracy experiments."""

import json

import torch

from cryoframe.geometry.rotations import geodesic_distance_deg


def pose_record(fh, err_deg: torch.Tensor, seconds: float, **keys) -> None:
    """Print and append ``keys`` + mean, median and fraction below 10° of `(N,)` rotation errors
    (degrees), and the rate ``N / seconds``.
    """
    n = len(err_deg)
    rec = {**keys, "n": int(n), "rot_mean_deg": float(err_deg.mean()),
           "rot_median_deg": float(err_deg.median()),
           "frac_below_10deg": float((err_deg < 10).double().mean()), "pairs_per_s": n / seconds}
    print(json.dumps(rec), flush=True)
    fh.write(json.dumps(rec) + "\n")


def rotation_error_deg(rot: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
    """Geodesic distances `(N,)` in degrees, in double precision."""
    return geodesic_distance_deg(rot.double(), truth.double())
