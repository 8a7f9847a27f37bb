"""CryoWizard (seed 003, Methods "Implementation of CryoWizard" and Extended Data Fig. 3).

Stages, with cryoframe's own ab initio (:mod:`~cryoframe.recon.abinitio`), refinement
(:mod:`~cryoframe.recon.refine`) and orientation diagnostics (cFAR of the refined half maps)
in place of CryoSPARC's:

1. **rank and embed**: CryoRanker scores (:func:`cryoframe.particles.rank.rank_star`) and
   Cryo-IEF features (:func:`cryoframe.particles.embed.embed_star`) of every particle, saved;
2. **initial-model subset search**: the top-ranked ``stage2_fractions`` of the data set (the
   seed's 50,000 and 100,000 particles, as fractions) each get an ab initio model and a
   refinement; candidates with cFAR > ``cfar_threshold`` (0.15) qualify and the best
   resolution becomes the initial model;
   **preferred-orientation module** when none qualifies: the particles scoring above τ are
   clustered into ``n_clusters`` (n' = 8) groups by k-means++ on their features, each group
   gets a model; the best-resolution group with cFAR > 0.15 (else the most isotropic one) is
   the template;
3. **final subset search**: with ``k`` particles scoring above τ = 0.4 split into n = 4 equal
   parts by rank, the top ``j`` parts (j = 1 … n) are refined from the initial model; the
   best-resolution map with cFAR > 0.15 is chosen (else the most isotropic one, and the report
   says so).

Outputs: ``scores.npy``, ``features.npy``, ``candidates.json``, the chosen ``map.mrc`` /
half maps / ``refined.star`` and ``report.html`` (candidates with particle count, resolution
and cFAR, the choice and why, angular distribution, FSC curves, central slices).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from cryoframe._atomic import atomic_savefig, atomic_write_text
from cryoframe.io.star import particles_with_poses, read_particles, write_particles
from cryoframe.particles.cluster import kmeans_pp
from cryoframe.particles.embed import embed_star
from cryoframe.particles.rank import rank_star
from cryoframe.recon.abinitio import AbinitioConfig, abinitio_particles
from cryoframe.recon.reconstruct import ParticleSet, ReconstructionRun, write_reconstruction
from cryoframe.recon.refine import (
    RefineConfig,
    RefineResult,
    read_particle_set_any,
    refine_particles,
)

__all__ = ["Candidate", "WizardConfig", "WizardResult", "preferred_orientation_groups",
           "run_wizard", "take_particles"]


@dataclass(frozen=True)
class WizardConfig:
    """CryoWizard parameters (seed values by default)."""

    stage2_fractions: tuple[float, ...] = (0.25, 0.5)
    tau: float = 0.4
    n_parts: int = 4
    cfar_threshold: float = 0.15
    n_clusters: int = 8
    min_particles: int = 50
    abinitio: AbinitioConfig = field(default_factory=lambda: AbinitioConfig(subset_size=1000))
    refine: RefineConfig = field(default_factory=lambda: RefineConfig(max_iterations=3))
    seed: int = 0


@dataclass
class Candidate:
    """One refined map of a particle subset."""

    stage: str
    name: str
    rows: np.ndarray
    result: RefineResult

    @property
    def resolution_angstrom(self) -> float:
        """Gold-standard resolution of the refined map (Å)."""
        return self.result.maps.resolution_angstrom

    @property
    def cfar(self) -> float:
        """The cFAR of the refined half maps."""
        return self.result.maps.cfar

    def summary(self) -> dict:
        """Stage, name, particle count, resolution and cFAR as a JSON-ready dict."""
        return {"stage": self.stage, "name": self.name, "n_particles": len(self.rows),
                "resolution_angstrom": self.resolution_angstrom, "cfar": self.cfar}


@dataclass
class WizardResult:
    """Chosen map, all candidates and the reasons."""

    final: Candidate
    initial: Candidate
    candidates: list[Candidate] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)
    scores: np.ndarray | None = None


def take_particles(ps: ParticleSet, rows: np.ndarray) -> ParticleSet:
    """The particles ``rows`` of ``ps`` as a new set (halves kept; both halves present)."""
    rows = np.asarray(rows)
    sub = ps.subset[rows].copy()
    if len(np.unique(sub)) < 2 and len(rows) > 1:
        sub[: len(rows) // 2] = 1
        sub[len(rows) // 2:] = 2
    ctf = None if ps.ctf is None else {k: v[rows] for k, v in ps.ctf.items()}
    return replace(ps, stack_files=[ps.stack_files[i] for i in rows],
                   stack_index=ps.stack_index[rows], rotations=ps.rotations[rows].clone(),
                   shifts_yx_angstrom=ps.shifts_yx_angstrom[rows].clone(), ctf=ctf, subset=sub)


def _model_and_refine(ps: ParticleSet, rows: np.ndarray, cfg: WizardConfig,
                      start: torch.Tensor | None, say: Callable[[str], None]) -> RefineResult:
    sub = take_particles(ps, rows)
    sub.rotations[:] = torch.eye(3)
    sub.shifts_yx_angstrom.zero_()
    if start is None:
        ab = abinitio_particles(sub, replace(cfg.abinitio, seed=cfg.seed))
        start = ab.volume
    return refine_particles(sub, start, cfg.refine, has_poses=False, log=say)


def _choose(cands: list[Candidate], thr: float) -> tuple[Candidate, str]:
    ok = [c for c in cands if c.cfar > thr]
    if ok:
        best = min(ok, key=lambda c: c.resolution_angstrom)
        return best, (f"{best.name}: best resolution ({best.resolution_angstrom:.2f} Å) among "
                      f"{len(ok)} candidate(s) with cFAR > {thr}")
    best = max(cands, key=lambda c: c.cfar)
    return best, (f"{best.name}: no candidate has cFAR > {thr}; the most isotropic one "
                  f"(cFAR {best.cfar:.2f}) was kept")


def preferred_orientation_groups(ps: ParticleSet, scores: np.ndarray, features: np.ndarray,
                                 config: WizardConfig | None = None,
                                 log: Callable[[str], None] | None = None) -> list[Candidate]:
    """The preferred-orientation module: a refined map per k-means++ group of top particles.

    The particles scoring above τ (at least ``2 × min_particles``) are clustered into
    ``n_clusters`` groups on their features; every group of at least ``min_particles`` gets an
    ab initio model and a refinement. Returns the groups' candidates (label order).
    """
    cfg = config or WizardConfig()
    say = log or (lambda s: None)
    order = np.argsort(-scores, kind="stable")
    top = order[: max(cfg.min_particles * 2, int((scores > cfg.tau).sum()))]
    labels, _ = kmeans_pp(features[top], min(cfg.n_clusters, len(top)), seed=cfg.seed)
    po = []
    for g in range(int(labels.max()) + 1):
        rows = np.sort(top[labels == g])
        if len(rows) < cfg.min_particles:
            continue
        say(f"preferred-orientation module: group {g} ({len(rows)} particles)")
        po.append(Candidate("PO module", f"group {g} ({len(rows)})", rows,
                            _model_and_refine(ps, rows, cfg, None, say)))
    return po


def run_wizard(ps: ParticleSet, scores: np.ndarray, features: np.ndarray,
               config: WizardConfig | None = None,
               log: Callable[[str], None] | None = None) -> WizardResult:
    """Stages 2 and 3 of CryoWizard on particles with known scores and features."""
    cfg = config or WizardConfig()
    say = log or (lambda s: None)
    n = len(ps)
    order = np.argsort(-scores, kind="stable")
    cands: list[Candidate] = []
    reasons: list[str] = []
    stage2 = []
    for f in cfg.stage2_fractions:
        k = max(cfg.min_particles, int(round(f * n)))
        rows = np.sort(order[:k])
        say(f"stage 2: top {k} particles ({f:.0%})")
        c = Candidate("stage 2", f"top {f:.0%} ({k})", rows,
                      _model_and_refine(ps, rows, cfg, None, say))
        stage2.append(c)
    cands += stage2
    if any(c.cfar > cfg.cfar_threshold for c in stage2):
        initial, why = _choose(stage2, cfg.cfar_threshold)
        reasons.append("initial model: " + why)
    else:
        reasons.append(f"all stage-2 maps have cFAR ≤ {cfg.cfar_threshold} "
                       f"({', '.join(f'{c.cfar:.2f}' for c in stage2)}): preferred-orientation "
                       f"module, k-means++ into {cfg.n_clusters} groups on the features of the "
                       f"particles scoring above τ = {cfg.tau}")
        po = preferred_orientation_groups(ps, scores, features, cfg, say)
        cands += po
        initial, why = _choose(po or stage2, cfg.cfar_threshold)
        reasons.append("template: " + why)
    k = int((scores > cfg.tau).sum())
    if k < cfg.min_particles:
        k = min(n, max(cfg.min_particles, len(initial.rows)))
        reasons.append(f"fewer than {cfg.min_particles} particles score above τ = {cfg.tau}: "
                       f"stage 3 uses the top {k}")
    kp = max(1, k // cfg.n_parts)
    stage3 = []
    for j in range(1, cfg.n_parts + 1):
        rows = np.sort(order[: j * kp])
        say(f"stage 3: top {j} of {cfg.n_parts} parts ({len(rows)} particles)")
        stage3.append(Candidate("stage 3", f"top {j}/{cfg.n_parts} parts ({len(rows)})", rows,
                                _model_and_refine(ps, rows, cfg, initial.result.maps.full,
                                                  say)))
    cands += stage3
    final, why = _choose(stage3, cfg.cfar_threshold)
    reasons.append("final map: " + why)
    return WizardResult(final, initial, cands, reasons, scores)


def _viewing_plot(rots: torch.Tensor, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt


    d = rots.to(torch.float64)[:, 0, :]  # Rᵀ e_z: beam direction in the reference frame (zyx)
    az = torch.rad2deg(torch.atan2(d[:, 1], d[:, 2])).numpy()
    el = torch.rad2deg(torch.asin(d[:, 0].clamp(-1, 1))).numpy()
    fig, ax = plt.subplots(figsize=(5.5, 3))
    h = ax.hist2d(az, el, bins=(36, 18), range=((-180, 180), (-90, 90)), cmap="viridis")
    fig.colorbar(h[3], ax=ax, label="particles")
    ax.set_xlabel("azimuth (deg)")
    ax.set_ylabel("elevation (deg)")
    ax.set_title("angular distribution of the final map's particles", fontsize=9)
    fig.tight_layout()
    atomic_savefig(fig, path, dpi=100)
    plt.close(fig)


def _fsc_plot(cands: list[Candidate], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from cryoframe._atomic import atomic_savefig

    fig, ax = plt.subplots(figsize=(6, 3.8))
    for c in cands:
        m = c.result.maps
        ax.plot(m.freq_cycles_per_px / m.pixel_size_angstrom, m.fsc_masked,
                label=f"{c.stage} {c.name}: {m.resolution_angstrom:.1f} Å, cFAR {m.cfar:.2f}")
    ax.axhline(0.143, color="grey", lw=0.8)
    ax.set_xlabel("spatial frequency (1/Å)")
    ax.set_ylabel("half-map FSC (masked)")
    ax.legend(fontsize=6)
    fig.tight_layout()
    atomic_savefig(fig, path, dpi=100)
    plt.close(fig)


def _slices_plot(vol: torch.Tensor, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from cryoframe._atomic import atomic_savefig

    n = vol.shape[0]
    fig, axs = plt.subplots(1, 3, figsize=(7, 2.5))
    for ax, img, lab in zip(axs, (vol[n // 2], vol[:, n // 2], vol[:, :, n // 2]),
                            ("z (xy plane)", "y (xz plane)", "x (yz plane)")):
        ax.imshow(img.numpy(), cmap="gray")
        ax.set_title(f"central slice {lab}", fontsize=8)
        ax.axis("off")
    fig.tight_layout()
    atomic_savefig(fig, path, dpi=100)
    plt.close(fig)


def write_report(res: WizardResult, out: Path) -> Path:
    """``report.html`` with the candidate table, the choice and why, and three figures."""
    _viewing_plot(res.final.result.rotations, out / "angular_distribution.png")
    _fsc_plot(res.candidates, out / "fsc_candidates.png")
    _slices_plot(res.final.result.maps.full, out / "central_slices.png")
    rows = "\n".join(
        f"<tr><td>{c.stage}</td><td>{c.name}</td><td>{len(c.rows)}</td>"
        f"<td>{c.resolution_angstrom:.2f}</td><td>{c.cfar:.2f}</td>"
        f"<td>{'initial' if c is res.initial else ''}{' final' if c is res.final else ''}</td></tr>"
        for c in res.candidates)
    why = "\n".join(f"<li>{r}</li>" for r in res.reasons)
    html = f"""<!doctype html><html><head><meta charset="utf-8"><title>cryoframe wizard</title>
<style>body{{font-family:sans-serif;max-width:900px}}td,th{{padding:2px 8px;text-align:right}}</style>
</head><body><h1>CryoWizard report</h1>
<p>Final map: {res.final.name}, {len(res.final.rows)} particles,
{res.final.resolution_angstrom:.2f} Å (masked half-map FSC 0.143), cFAR {res.final.cfar:.2f}.</p>
<h2>Choices</h2><ul>{why}</ul>
<h2>Candidates</h2><table><tr><th>stage</th><th>subset</th><th>particles</th>
<th>resolution (Å)</th><th>cFAR</th><th>role</th></tr>{rows}</table>
<h2>FSC curves</h2><img src="fsc_candidates.png">
<h2>Angular distribution</h2><img src="angular_distribution.png">
<h2>Central slices</h2><img src="central_slices.png">
</body></html>
"""
    atomic_write_text(out / "report.html", html)
    return out / "report.html"


def wizard_star(star: str | Path, out_dir: str | Path, config: WizardConfig | None = None,
                log: Callable[[str], None] | None = None, contrast: str = "auto") -> WizardResult:
    """Run all stages on a particle STAR and write every output into ``out_dir``."""
    from cryoframe._atomic import atomic_write_text

    cfg = config or WizardConfig()
    say = log or (lambda s: None)
    star, out = Path(star), Path(out_dir)
    ps, _ = read_particle_set_any(star, cfg.seed)
    out.mkdir(parents=True, exist_ok=True)
    say("stage 1: CryoRanker scores and Cryo-IEF features")
    rk = rank_star(star, out / "ranked.star", progress=False, contrast=contrast)
    scores = rk.scores
    np.save(out / "scores.npy", scores)
    embed_star(star, out / "features.npy", progress=False, contrast=contrast)
    features = np.load(out / "features.npy")
    res = run_wizard(ps, scores, features, cfg, say)
    f = res.final
    run = ReconstructionRun(f.result.maps, len(f.rows), f.result.seconds,
                            len(f.rows) / max(f.result.seconds, 1e-9))
    write_reconstruction(run, out, {"star": str(star), "subset": f.name})
    table = read_particles(star)
    table.particles = table.particles.iloc[f.rows].reset_index(drop=True)
    sh = torch.zeros(len(f.rows), 3, dtype=torch.float64)
    sh[:, 1:] = f.result.shifts_yx_angstrom.to(torch.float64)
    table.particles = particles_with_poses(table, f.result.rotations.to(torch.float64), sh)
    table.particles["rlnRandomSubset"] = take_particles(ps, f.rows).subset
    write_particles(out / "refined.star", table)
    atomic_write_text(out / "candidates.json", json.dumps(
        {"candidates": [c.summary() for c in res.candidates], "reasons": res.reasons,
         "initial": res.initial.name, "final": res.final.name,
         "config": {k: (v.__dict__ if hasattr(v, "__dict__") else v)
                    for k, v in cfg.__dict__.items()}}, indent=2, default=str) + "\n")
    write_report(res, out)
    return res
