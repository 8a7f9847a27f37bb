"""``cryoframe demo``: the end-to-end main job on bundled data, written as an HTML report.

Top layer (beside :mod:`cryoframe.cli`): it only calls the library.

1. **Densities** of three SUB5 classes (7P6Z 70S ribosome, 1BXN RuBisCO, 3CF3 p97) from
   their bundled atomic models at 10 Å/voxel (MRC + central slices). Alignment and averaging
   use the ribosome, which has no point-group symmetry (rotation errors are well defined) and
   enough low-resolution features at 10 Å/voxel to be aligned.
2. **Full CryoEngine path**: a small virtual sample (Poisson-disk scene, tilt series −60…+60° in
   2° steps with per-tilt CTF, drift, alignment, weighted back-projection), 32³ subtomograms
   extracted at the true positions and written as MRC + RELION STAR.
3. Subtomograms made as the **tilt-series path** makes them (random poses, ±60° wedge, WBP
   transfer, per-tilt |CTF|, WBP-coloured noise; :mod:`cryoframe.simulate.tilt_matched`) at
   SNR 0.1, **embedded** with the shipped subtomogram encoder.
4. **Classification** on the 1:1:8 split (k-NN, linear probe, MLP head) beside the
   rotation-invariant feature baseline on the same split, and **k-means clustering**.
5. **Alignment** of pairs in the local range (≤ 15°, ≤ 3 voxels): the posterior aligner
   (shipped correlation head) vs the exhaustive FFT reference; errors in degrees and voxels,
   pairs/s.
6. **Reference-free averaging** of one class (gold-standard half maps, FSC, resolution).

Every figure in the report is measured in this run with the stated seed.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from cryoframe._atomic import atomic_savefig
from cryoframe.baselines.invariant_features import InvariantFeatureClassifier
from cryoframe.fourier.fsc import fsc
from cryoframe.geometry.euler import matrix_to_relion_euler
from cryoframe.geometry.rotations import (
    axis_angle_to_matrix,
    frobenius_distance,
    geodesic_distance_deg,
    random_rotations,
)
from cryoframe.io.mrc import write_mrc
from cryoframe.io.star import write_star
from cryoframe.models.pretrained import load_correlation_head, load_encoder
from cryoframe.report.html import Section, Table, fmt, write_report
from cryoframe.simulate.config import TomogramConfig
from cryoframe.simulate.density import load_density, write_density
from cryoframe.simulate.engine import simulate_tomogram
from cryoframe.simulate.fastpath import FastSubtomogramSimulator
from cryoframe.simulate.noise import add_noise, combine_signal_noise
from cryoframe.simulate.tilt_matched import (
    TiltGeometry,
    coloured_noise,
    draw_defocus_angstrom,
    tilt_ctf_magnitude_rfft,
    wbp_noise_psd_rfft,
)
from cryoframe.tasks.average import average_subtomograms
from cryoframe.tasks.classify import evaluate_protocols, split_1_1_8
from cryoframe.tasks.cluster import cluster_embeddings, embed_2d, plot_clusters
from cryoframe.tasks.fft_align import FFTAligner, wedge_mask
from cryoframe.tasks.posterior_align import PosteriorAligner
from cryoframe.train.loop import embed_for_inference

__all__ = ["run_demo", "DEMO_CLASSES"]

#: Classes of the demo: bundled atomic models (a subset of the SUB5 benchmark classes).
DEMO_CLASSES = ("7P6Z", "1BXN", "3CF3")


def _savefig(fig, path: Path) -> Path:
    import matplotlib.pyplot as plt

    atomic_savefig(fig, path, dpi=110, bbox_inches="tight", format="png")
    plt.close(fig)
    return path


def _slices_png(volumes: list[np.ndarray], titles: list[str], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(3, len(volumes), figsize=(2.2 * len(volumes), 6.6), squeeze=False)
    for j, (v, t) in enumerate(zip(volumes, titles, strict=True)):
        c = [s // 2 for s in v.shape]
        for i, (sl, name) in enumerate([(v[c[0]], "z"), (v[:, c[1]], "y"), (v[:, :, c[2]], "x")]):
            axes[i, j].imshow(sl, cmap="gray")
            axes[i, j].set_xticks([])
            axes[i, j].set_yticks([])
            if i == 0:
                axes[i, j].set_title(t, fontsize=9)
            if j == 0:
                axes[i, j].set_ylabel(f"central {name}")
    return _savefig(fig, path)


def _scale_bar(ax, shape, pixel_angstrom: float, length_angstrom: float) -> None:
    """Draw a white scale bar of ``length_angstrom`` in the lower left of an image axis."""
    h, w = shape[-2], shape[-1]
    n_px = length_angstrom / pixel_angstrom
    x0, y0 = 0.05 * w, 0.92 * h
    ax.plot([x0, x0 + n_px], [y0, y0], c="white", lw=3)
    label = f"{length_angstrom / 10:g} nm" if length_angstrom >= 100 else f"{length_angstrom:g} Å"
    ax.text(x0, y0 - 0.03 * h, label, color="white", fontsize=8)


def _log(console, msg: str) -> None:
    if console is not None:
        console.print(msg)


def run_demo(out_dir: str | Path = "cryoframe_demo", seed: int = 0, quick: bool = False,
             console=None, weights: str | Path | None = None) -> Path:
    """Run the demo pipeline and write ``out_dir/report.html``; returns its path.

    The six stages run in order (:func:`_densities`, :func:`_tomogram`, :func:`_embedding`,
    :func:`_classification`, :func:`_alignment`, :func:`_averaging`), sharing one seeded
    generator so that every draw is the same as in one straight run.

    Parameters
    ----------
    out_dir : str or Path
        Output folder (created).
    seed : int
        Seed of every random draw.
    quick : bool
        Fewer particles (for tests); the figures are then noisier.
    console : rich.console.Console, optional
        Progress messages.
    weights : str or Path, optional
        Subtomogram encoder file written by ``cryoframe pretrain`` for the embedding stage;
        default: the shipped encoder (the alignment stage uses the shipped correlation head).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    torch.manual_seed(seed)
    run = _Run(out, seed, quick, console, torch.Generator().manual_seed(seed))
    section1, dens = _densities(run)
    sections = [section1, _tomogram(run, dens)]
    emb = _embedding(run, dens, weights)
    sections += [_classification(run, emb), _alignment(run, emb), _averaging(run, emb)]
    wall = time.perf_counter() - t_start
    sections.append(Section("Run", [f"seed {seed}, quick={quick}, total wall time {wall:.0f} s, "
                                    f"torch threads {torch.get_num_threads()}."]))
    report = write_report(out / "report.html", "cryoframe demo", sections)
    _log(console, f"report: {report}")
    return report


@dataclass(frozen=True)
class _Run:
    """What every stage of one demo run shares."""

    out: Path
    seed: int
    quick: bool
    console: object
    gen: torch.Generator  #: the one generator of the run's random draws, in stage order


@dataclass(frozen=True)
class _Embedded:
    """The subtomograms of stage 3 and their embeddings (used by stages 4–6)."""

    sim: FastSubtomogramSimulator
    labels: np.ndarray
    clean: torch.Tensor
    noisy: torch.Tensor
    emb_clean: np.ndarray
    emb_noisy: np.ndarray
    enc_meta: dict
    weights_name: str
    embed_rate: float
    n_per: int
    snr: float


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _densities(run: _Run) -> tuple[Section, list]:
    """Stage 1: densities of the demo classes from their atomic models."""
    out, console = run.out, run.console
    _log(console, "[1/6] densities from atomic models")
    dens = [load_density(c) for c in DEMO_CLASSES]
    for c, d in zip(DEMO_CLASSES, dens, strict=True):
        write_density(out / "maps" / f"{c.lower()}_10A.mrc", d)
    png = _slices_png([d.data for d in dens], [f"{c} ({d.box_size_px}³)" for c, d in
                                                zip(DEMO_CLASSES, dens, strict=True)],
                      out / "densities.png")
    return Section(
        "1. Densities from atomic models",
        [f"Coulomb potential with gemmi electron form factors, 2 Å fine grid, Fourier-cropped "
         f"to 10 Å/voxel, low-passed to 30 Å; maps written to {out / 'maps'}."],
        [Table(["class", "box (voxels)", "source"],
               [[c, str(d.box_size_px), str(d.provenance.get("file", ""))]
                for c, d in zip(DEMO_CLASSES, dens, strict=True)])],
        [(png, "Central slices of the density maps")]), dens


def _tomogram(run: _Run, dens: list) -> Section:
    """Stage 2: the full CryoEngine path on a small virtual sample."""
    out, console, seed, quick = run.out, run.console, run.seed, run.quick
    plt = _pyplot()
    _log(console, "[2/6] full CryoEngine path: scene → tilt series → WBP → extraction")
    shape = (64, 192, 192) if quick else (96, 256, 256)
    tcfg = TomogramConfig(shape_zyx_px=shape, n_particles=12 if quick else 24, ctf=True)
    t0 = time.perf_counter()
    tomo = simulate_tomogram(dens, tcfg, seed=seed)
    t_tomo = time.perf_counter() - t0
    _log(console, f"      tomogram reconstructed and subtomograms extracted in {t_tomo:.0f} s")
    ex = tomo.extraction
    _export_subtomograms(ex, out / "subtomograms", DEMO_CLASSES)
    vol = tomo.tomogram.numpy()
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.5))
    axes[0].imshow(vol[vol.shape[0] // 2], cmap="gray")
    axes[0].set_title("tomogram, central z slice")
    ti = tomo.tilt_series.images
    axes[1].imshow(np.asarray(ti[0]), cmap="gray")
    axes[1].set_title(f"tilt image at {float(tomo.tilt_series.tilts_deg[0]):.0f}°")
    voxel_a = float(dens[0].voxel_size_angstrom)  # the scene is built on the density grid
    for a, img in zip(axes, [vol[vol.shape[0] // 2], np.asarray(ti[0])]):
        a.set_xticks([])
        a.set_yticks([])
        _scale_bar(a, img.shape, voxel_a, 500.0)
    png2 = _savefig(fig, out / "tomogram.png")
    return Section(
        "2. Full CryoEngine path",
        [f"Virtual sample {shape[2]}×{shape[1]}×{shape[0]} voxels, {len(tomo.scene.class_ids)} "
         f"particles placed by Poisson-disk sampling; tilt series −60…+60° in 2° steps with "
         f"per-tilt CTF (300 kV, defocus 3–6 µm), drift, alignment and weighted "
         f"back-projection; {len(ex.table)} subtomograms extracted (32³) and written as MRC + "
         f"RELION STAR to {out / 'subtomograms'}. Wall time {t_tomo:.1f} s."],
        [Table(["stage", "seconds"], [[k, f"{v:.2f}"] for k, v in tomo.timings_s.items()])],
        [(png2, "Reconstructed tomogram and a tilt image")])


def _embedding(run: _Run, dens: list, weights: str | Path | None) -> _Embedded:
    """Stage 3: subtomograms as the tilt-series path makes them, embedded by the encoder."""
    console, quick, gen = run.console, run.quick, run.gen
    _log(console, "[3/6] tilt-series-like subtomograms at SNR 0.1 and embedding with the "
                  "shipped encoder")
    n_per = 40 if quick else 120
    snr = 0.1
    labels = np.repeat(np.arange(len(DEMO_CLASSES)), n_per)
    rots = random_rotations(len(labels), generator=gen)
    shifts = (torch.rand(len(labels), 3, generator=gen) * 2 - 1)
    sim = FastSubtomogramSimulator(dens, box_size_px=32)
    geom = TiltGeometry()
    ctf = tilt_ctf_magnitude_rfft(32, geom, draw_defocus_angstrom(len(labels), geom, gen))
    clean = torch.fft.irfftn(torch.fft.rfftn(sim.simulate(labels, rots, shifts),
                                             dim=(-3, -2, -1)) * ctf, s=(32,) * 3,
                             dim=(-3, -2, -1))
    unit_noise = coloured_noise(len(labels), wbp_noise_psd_rfft(32, geom), gen)
    noisy = combine_signal_noise(clean, unit_noise, snr)
    encoder, enc_meta = load_encoder(weights)
    weights_name = "shipped encoder" if weights is None else Path(weights).name
    t0 = time.perf_counter()
    emb_clean = embed_for_inference(encoder, clean).numpy()
    emb_noisy = embed_for_inference(encoder, noisy).numpy()
    t_embed = time.perf_counter() - t0
    embed_rate = 2 * len(labels) / t_embed
    _log(console, f"      {2 * len(labels)} subtomograms embedded in {t_embed:.0f} s")

    return _Embedded(sim, labels, clean, noisy, emb_clean, emb_noisy, enc_meta, weights_name,
                     embed_rate, n_per, snr)


def _classification(run: _Run, e: _Embedded) -> Section:
    """Stage 4: classifiers on the 1:1:8 split and k-means clustering."""
    from sklearn.metrics import adjusted_rand_score

    out, console, seed = run.out, run.console, run.seed
    labels, clean, noisy, emb_clean, emb_noisy = (e.labels, e.clean, e.noisy, e.emb_clean,
                                                  e.emb_noisy)
    n_per, snr, weights_name, enc_meta, embed_rate = (e.n_per, e.snr, e.weights_name,
                                                      e.enc_meta, e.embed_rate)
    _log(console, "[4/6] classification (1:1:8 split) and clustering")
    split = split_1_1_8(labels, seed=seed)
    acc = evaluate_protocols(emb_clean, labels, emb_noisy, labels, split, seed=seed)
    inv = InvariantFeatureClassifier(seed=seed).fit(
        torch.cat([clean, noisy[split.train]]), np.concatenate([labels, labels[split.train]]))
    acc_inv = 100.0 * float((inv.predict(noisy[split.test]) == labels[split.test]).mean())
    cl = cluster_embeddings(emb_noisy, len(DEMO_CLASSES), seed=seed)
    ari = adjusted_rand_score(labels, cl.labels)
    png3 = plot_clusters(embed_2d(emb_noisy, "pca", seed=seed), cl.labels,
                         out / "clusters.png", title="k-means on embeddings (PCA view)",
                         true_labels=labels, class_names=DEMO_CLASSES)
    return Section(
        "3–4. Embedding, classification and clustering",
        [f"{n_per} subtomograms per class at random poses made as the tilt-series path makes "
         f"them (±60° wedge, WBP transfer, a |CTF| per tilt with defoci of 3–6 µm, "
         f"WBP-coloured noise) at SNR {snr}; these structures were never used in pretraining. "
         f"Embedded with the {weights_name} ({enc_meta.get('model', 'encoder')}, "
         f"{enc_meta.get('steps', '?')} training steps) "
         f"at {embed_rate:.0f} subtomograms/s. Classifiers train on all SNR-100 samples plus "
         f"the 10 % training part of the SNR-{snr} data and are tested on its 80 % test part "
         f"({len(split.test)} subtomograms); chance is {100 / len(DEMO_CLASSES):.0f} %."],
        [Table(["method (same split)", "test accuracy (%)"],
               [["frozen encoder + k-NN", fmt(acc['knn'])],
                ["frozen encoder + linear probe", fmt(acc['linear'])],
                ["frozen encoder + MLP head (40 epochs)", fmt(acc['mlp'])],
                ["rotation-invariant features + logistic regression (reference)", fmt(acc_inv)]]),
         Table(["clustering", "value"],
               [["k-means++ on embeddings, adjusted Rand index", f"{ari:.3f}"]])],
        [(png3, "Clusters of the noisy subtomograms")])


def _alignment(run: _Run, e: _Embedded) -> Section:
    """Stage 5: the posterior aligner (shipped correlation head) vs exhaustive FFT alignment."""
    console, seed, gen = run.console, run.seed, run.gen
    quick = run.quick
    sim, snr = e.sim, e.snr
    _log(console, "[5/6] alignment: posterior aligner vs exhaustive FFT search")
    n_pairs = 12 if quick else 32
    pc = torch.zeros(n_pairs, dtype=torch.long)  # 7P6Z: asymmetric
    r0 = random_rotations(n_pairs, generator=gen)
    axis = torch.nn.functional.normalize(torch.randn(n_pairs, 3, generator=gen), dim=-1)
    ang = torch.deg2rad(torch.rand(n_pairs, generator=gen) * 15.0)
    r_rel = axis_angle_to_matrix(axis, ang).float()
    t_rel = torch.nn.functional.normalize(torch.randn(n_pairs, 3, generator=gen), dim=-1) * \
        (torch.rand(n_pairs, 1, generator=gen) * 3.0)
    refs = add_noise(sim.simulate(pc, r0), snr, seed + 1, np.arange(n_pairs))
    parts = add_noise(sim.simulate(pc, r_rel @ r0, t_rel), snr, seed + 2, np.arange(n_pairs))
    mask = wedge_mask((32, 32, 32))
    rows = []
    for name, aligner in [("posterior aligner (learned correlation head)",
                           PosteriorAligner(load_correlation_head(), range_deg=15.0,
                                            max_shift_px=8.0)),
                          ("exhaustive FFT, 10° local grid (reference)",
                           FFTAligner(step_deg=10.0, local_range_deg=15.0))]:
        t0 = time.perf_counter()
        res = aligner.align_to_reference(parts, refs, particle_mask=mask, reference_mask=mask)
        dt = time.perf_counter() - t0
        _log(console, f"      {name}: {dt:.0f} s")
        rot_err = geodesic_distance_deg(res.rotations.double(), r_rel.double())
        frob = frobenius_distance(res.rotations.double(), r_rel.double())
        tr_err = (res.shifts_zyx_px - t_rel).norm(dim=-1)
        rows.append([name, f"{rot_err.mean():.2f} ± {rot_err.std():.2f}",
                     f"{frob.mean():.3f}", f"{tr_err.mean():.2f} ± {tr_err.std():.2f}",
                     f"{n_pairs / dt:.1f}"])
    return Section(
        "5. Alignment (local range)",
        [f"{n_pairs} pairs of {DEMO_CLASSES[0]} at SNR {snr}, relative rotations ≤ 15° and shifts ≤ 3 voxels, "
         f"both members with the ±60° wedge fixed in the microscope frame. The posterior "
         f"aligner's correlation head (shipped, trained on 134 other structures) weights the "
         f"wedge-constrained correlation by the pair's spectra and returns the posterior-mean "
         f"pose over a coarse-to-fine SO(3) grid; seed {seed}."],
        [Table(["aligner", "rotation error (°)", "‖R − R̂‖_F", "translation error (voxels)",
                "pairs/s"], rows)])


def _averaging(run: _Run, e: _Embedded) -> Section:
    """Stage 6: reference-free averaging with gold-standard half maps."""
    out, console, seed, quick, gen = run.out, run.console, run.seed, run.quick, run.gen
    sim = e.sim
    mask = wedge_mask((32, 32, 32))
    plt = _pyplot()
    _log(console, "[6/6] reference-free averaging with gold-standard half maps")
    n_avg = 48 if quick else 120
    cls0 = torch.zeros(n_avg, dtype=torch.long)
    ra = random_rotations(n_avg, generator=gen)
    sa = (torch.rand(n_avg, 3, generator=gen) * 2 - 1) * 2.0
    snr_avg = 1.0  # a moderate SNR, so that a CPU-sized run resolves the particle's shape
    parts_avg = add_noise(sim.simulate(cls0, ra, sa), snr_avg, seed + 3, np.arange(n_avg))
    gt = sim.simulate(torch.zeros(1, dtype=torch.long), torch.eye(3)[None],
                      ground_truth=True)[0]
    t0 = time.perf_counter()
    avg = average_subtomograms(parts_avg, FFTAligner(step_deg=20.0 if quick else 15.0),
                               particle_mask=mask, ground_truth=gt,
                               max_iterations=3 if quick else 6, seed=seed)
    t_avg = time.perf_counter() - t0
    _log(console, f"      {len(avg.history)} averaging iterations in {t_avg:.0f} s")
    for name, v in [("map", avg.map), ("half1", avg.half1), ("half2", avg.half2)]:
        write_mrc(out / "average" / f"{name}.mrc", v.numpy().astype(np.float32), 10.0)
    freq, curve = fsc(avg.half1, avg.half2)
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    ax.plot(np.asarray(freq) / 10.0, np.asarray(curve), label="half maps")
    if avg.fsc_gt is not None:
        ax.plot(np.asarray(avg.fsc_freq) / 10.0, np.asarray(avg.fsc_gt), label="map vs truth")
    if avg.fsc_random_pose is not None:
        ax.plot(np.asarray(avg.fsc_freq) / 10.0, np.asarray(avg.fsc_random_pose), c="gray",
                label="half maps, random poses (control)")
    ax.axhline(0.143, ls="--", c="gray", lw=0.8)
    ax.axhline(0.5, ls=":", c="gray", lw=0.8)
    ax.text(0.001, 0.153, "0.143 (half maps)", fontsize=7, color="gray")
    ax.text(0.001, 0.51, "0.5 (vs truth)", fontsize=7, color="gray")
    ticks_a = [100.0, 60.0, 40.0, 30.0, 25.0, 20.0]
    ax.set_xticks([1.0 / a for a in ticks_a], [f"{a:g}" for a in ticks_a])
    ax.set_xlim(0.0, 0.05)
    ax.set_xlabel("resolution (Å)")
    ax.set_ylabel("FSC")
    ax.legend(fontsize=7)
    png4 = _savefig(fig, out / "fsc.png")
    registered = avg.map if avg.map_registered_to_gt is None else avg.map_registered_to_gt
    png5 = _slices_png([registered.numpy(), gt.numpy()],
                       ["average (registered onto the truth)", "ground truth"],
                       out / "average.png")
    return Section(
        "6. Reference-free subtomogram averaging",
        [f"{n_avg} subtomograms of {DEMO_CLASSES[0]} at SNR {snr_avg}, unknown poses, two "
         f"independent half sets; exhaustive FFT aligner; {len(avg.history)} iterations in "
         f"{t_avg:.1f} s. Half maps and map written to {out / 'average'}. Nyquist is 20 Å."],
        [Table(["figure", "value"],
               [["half-map FSC 0.143 resolution (Å)", fmt(avg.resolution_halfmap_angstrom)],
                ["same, particles averaged at random poses (control; a half-map figure "
                 "means something only where it beats this)",
                 fmt(getattr(avg, "resolution_random_pose_angstrom", None))],
                ["FSC 0.5 vs ground truth (Å)", fmt(avg.resolution_vs_gt_angstrom)]])],
        [(png4, "FSC curves"), (png5, "Average vs ground truth")])


def _export_subtomograms(ex, folder: Path, class_names) -> None:
    """Write extracted subtomograms as MRC files + a RELION STAR naming them."""
    import pandas as pd

    from cryoframe.io.mrc import write_mrc

    folder.mkdir(parents=True, exist_ok=True)
    tab = ex.table.reset_index(drop=True)
    rot = np.stack([tab[[f"R{i}{j}" for j in range(3)]].to_numpy() for i in range(3)], axis=1)
    rot_deg, tilt_deg, psi_deg = (np.asarray(a) for a in
                                  matrix_to_relion_euler(torch.as_tensor(rot)))
    names = []
    for i in range(len(tab)):
        name = f"subtomo_{i:04d}.mrc"
        write_mrc(folder / name, ex.volumes[i].numpy().astype(np.float32), 10.0)
        names.append(name)
    df = pd.DataFrame({
        "rlnImageName": names,
        "rlnAngleRot": rot_deg, "rlnAngleTilt": tilt_deg, "rlnAnglePsi": psi_deg,
        "rlnClassNumber": tab["class_id"].to_numpy().astype(int) + 1,
        "rlnPixelSize": np.full(len(tab), 10.0),
    })
    write_star(folder / "subtomograms.star", {"particles": df})
    (folder / "classes.txt").write_text(
        "\n".join(f"{i + 1}\t{c}" for i, c in enumerate(class_names)) + "\n")
