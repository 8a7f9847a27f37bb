"""Frozen pydantic configurations of CryoEngine runs (data only; defaults follow App. C)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, PositiveFloat, PositiveInt, model_validator

from cryoframe._config import FrozenConfig, load_config  # noqa: F401  (load_config re-exported)

__all__ = ["DensityConfig", "TomogramConfig", "benchmark_tomogram_config", "FastPathConfig",
           "SubtomogramDatasetConfig", "load_config"]


class DensityConfig(FrozenConfig):
    """Atomic model → density map."""

    voxel_size_angstrom: PositiveFloat = 10.0
    fine_voxel_angstrom: PositiveFloat = 2.0
    resolution_angstrom: float = Field(30.0, ge=0)
    threshold_fraction: float = Field(0.005, ge=0, lt=1)


class TomogramConfig(FrozenConfig):
    """Scene, tilt series, alignment, reconstruction and extraction (full path)."""

    shape_zyx_px: tuple[PositiveInt, PositiveInt, PositiveInt] = (200, 500, 500)
    box_size_px: PositiveInt = 32
    margin_px: float = Field(3.0, ge=0)
    n_particles: PositiveInt | None = None
    occupancy: float = Field(0.1, gt=0, lt=1)
    tilt_min_deg: float = Field(-60.0, ge=-90, le=90)
    tilt_max_deg: float = Field(60.0, ge=-90, le=90)
    tilt_step_deg: PositiveFloat = 2.0
    scheme: Literal["sequential", "dose_symmetric"] = "sequential"
    drift_std_px: float = Field(0.5, ge=0)
    ctf: bool = False
    defocus_min_angstrom: PositiveFloat = 30000.0
    defocus_max_angstrom: PositiveFloat = 60000.0
    voltage_kv: PositiveFloat = 300.0
    cs_mm: float = 2.7
    amplitude_contrast: float = Field(0.07, ge=0, le=1)
    dose_per_tilt_e_per_a2: float = Field(0.0, ge=0)
    noise_stage: Literal["subtomogram", "tilt"] = "subtomogram"
    align: bool = True
    refine_tilt_axis: bool = False  # cryoframe.simulate.tilt_axis after translational alignment
    cosine_weighting: bool = False
    offset_max_px: float = Field(1.0, ge=0)
    min_separation_px: float = Field(17.0, ge=0)
    mask_threshold: float = Field(0.05, gt=0, lt=1)

    @model_validator(mode="after")
    def _check(self) -> TomogramConfig:
        if self.tilt_min_deg > self.tilt_max_deg:
            raise ValueError("tilt_min_deg must be <= tilt_max_deg")
        if self.defocus_min_angstrom > self.defocus_max_angstrom:
            raise ValueError("defocus_min_angstrom must be <= defocus_max_angstrom")
        return self


def benchmark_tomogram_config(shape_zyx_px: tuple[int, int, int] = (160, 400, 400),
                              box_size_px: int = 32) -> TomogramConfig:
    """The tomogram physics of the SUB5 benchmarks, shared with full-path training data.

    −60…+60° in 2° steps, per-tilt CTF at 300 kV with 3–6 µm underfocus, noise added to the tilt
    images (reconstructed alongside as a separate unit-noise part), ≤ 1 voxel picking error.
    """
    return TomogramConfig(
        shape_zyx_px=shape_zyx_px, box_size_px=box_size_px, tilt_min_deg=-60.0,
        tilt_max_deg=60.0, tilt_step_deg=2.0, ctf=True, defocus_min_angstrom=30000.0,
        defocus_max_angstrom=60000.0, voltage_kv=300.0, noise_stage="tilt", offset_max_px=1.0)


class FastPathConfig(FrozenConfig):
    """Per-particle fast path (no tomogram)."""

    tilt_min_deg: float = Field(-60.0, ge=-90, le=90)
    tilt_max_deg: float = Field(60.0, ge=-90, le=90)
    wbp_weighting: bool = True
    cosine_weighting: bool = False
    b_factor_angstrom2: float = Field(0.0, ge=0)
    offset_max_px: float = Field(1.0, ge=0)


class SubtomogramDatasetConfig(FrozenConfig):
    """A subtomogram dataset: classes × subtomograms per class, full or fast path."""

    structures: list[str] = Field(default_factory=lambda: ["3J9I", "4V4R_30S"])
    n_per_class: PositiveInt = 64
    path: Literal["full", "fast"] = "fast"
    snrs: list[PositiveFloat] = Field(default_factory=lambda: [100.0, 0.1, 0.05, 0.03, 0.01])
    seed: int = 0
    unit_size: PositiveInt = 64
    density: DensityConfig = DensityConfig()
    tomogram: TomogramConfig = TomogramConfig()
    fast: FastPathConfig = FastPathConfig()
