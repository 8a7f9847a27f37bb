"""``cryoframe wizard STAR --out DIR``: CryoWizard (ranking, subset searches, orientation module)."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

from cryoframe._errors import InputError
from cryoframe._record import write_run_record
from cryoframe.cli import _options as opt
from cryoframe.recon.abinitio import AbinitioConfig
from cryoframe.recon.refine import RefineConfig
from cryoframe.recon.wizard import WizardConfig, wizard_star

console = Console()


def wizard(
    star: Path = typer.Argument(..., help="2D particle STAR (poses ignored)."),
    out: Path = typer.Option(..., "--out", help="Output folder (report.html, map.mrc ...)."),
    fractions: str = typer.Option("0.25,0.5", "--stage2-fractions",
                                  help="Top-ranked fractions for the initial models."),
    tau: float = typer.Option(0.4, "--tau", help="Score threshold of stage 3."),
    n_parts: int = typer.Option(4, "--parts", min=1, help="n of stage 3."),
    cfar_threshold: float = typer.Option(0.15, "--cfar-threshold", help="cFAR above which an initial model qualifies (below: orientation module)."),
    n_clusters: int = typer.Option(8, "--clusters", min=1, help="n' of the PO module."),
    refine_iterations: int = typer.Option(3, "--refine-iterations", min=1, help="Refinement iterations per candidate."),
    abinitio_subset: int = typer.Option(1000, "--abinitio-subset", min=10, help="Particles in the ab initio subset."),
    contrast: str = opt.contrast(),
    seed: int = opt.seed(),
    threads: int = opt.threads(),
) -> None:
    """CryoWizard: CryoRanker scores + Cryo-IEF features, initial models from top-ranked
    subsets with cFAR diagnosis (k-means++ preferred-orientation module below 0.15), final
    subset search, HTML report.
    """
    import torch


    if threads:
        torch.set_num_threads(threads)
    try:
        fr = tuple(float(x) for x in fractions.split(","))
    except ValueError:
        raise InputError(f"bad fractions '{fractions}'", field="--stage2-fractions",
                         expected="comma-separated numbers in (0, 1]") from None
    if not fr or not all(0 < f <= 1 for f in fr):
        raise InputError(f"bad fractions '{fractions}'", field="--stage2-fractions",
                         expected="comma-separated numbers in (0, 1]")
    cfg = WizardConfig(stage2_fractions=fr, tau=tau, n_parts=n_parts,
                       cfar_threshold=cfar_threshold, n_clusters=n_clusters,
                       abinitio=AbinitioConfig(subset_size=abinitio_subset, seed=seed),
                       refine=RefineConfig(max_iterations=refine_iterations), seed=seed)
    res = wizard_star(star, out, cfg, log=console.print, contrast=contrast)
    write_run_record(out / "wizard_run.json", "wizard", {
        "star": str(star), "fractions": fr, "tau": tau, "parts": n_parts,
        "cfar_threshold": cfar_threshold, "clusters": n_clusters,
        "refine_iterations": refine_iterations, "abinitio_subset": abinitio_subset,
        "seed": seed})
    for r in res.reasons:
        console.print(r)
    console.print(f"final: {len(res.final.rows)} particles, "
                  f"{res.final.resolution_angstrom:.2f} Å, cFAR {res.final.cfar:.2f}; "
                  f"wrote {out}/report.html, map.mrc, refined.star")


def register(app: typer.Typer) -> None:
    """Add the ``wizard`` command."""
    app.command("wizard", epilog=opt.example(
        "cryoframe wizard particles.star --out wizard/"))(wizard)
