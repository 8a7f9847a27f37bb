"""Robustness suite (issue 15): reader fuzzing, kill-and-resume, bounded memory.

Metrics
-------
``mutants_<fmt>`` / ``failures_<fmt>`` for fmt in mrc, star, tbl, pdb
    Seeded mutants (:mod:`cryoframe.testing.fuzz`) of the real files in the source checkout's
    ``tests/data`` (MRC: EMD-3197 and a RELION reconstruction; STAR: RELION 3.1 particles,
    RELION 5 / WarpTools particles, two teamtomo/starfile examples; tbl: teamtomo/dynamotable
    ``t_double.tbl``; PDB/mmCIF: 1AKE as PDB and as the mmCIF gemmi writes from it). A failure
    is any outcome other than a correct read or an ``InputError``; 0 is the contract. Full run:
    1,000 mutants per format; quick: 60.
``kill_resume_total`` / ``kill_resume_passed``
    Commands run in a subprocess, SIGKILLed at several points (progress markers on disk: store
    units, checkpoints), restarted until they finish, and compared with an uninterrupted run of
    the same command: ``simulate subtomograms`` (every volume and table row equal),
    ``pretrain`` (tiny NRCL config; encoder weights equal), ``particles pretrain`` (tiny MoCo
    run; encoder weights equal) and ``average`` (map and poses equal).
``rss_mb_1e4`` / ``rss_mb_1e5``
    Peak resident memory (``VmHWM``, fresh subprocess per run) of ``cryoframe embed`` and
    of ``cryoframe average`` (one iteration, 90° grid, the store streamed in chunks) over
    stores of 10,000 and 100,000 subtomograms: the larger of the two commands (each is also
    reported, ``embed_rss_mb_*`` / ``average_rss_mb_*``). To fit this CPU and disk the
    stores hold 8³ volumes (mostly constant, so zstd compresses them) and the encoder is a
    tiny APT-ViT (8³, patch 4, one block) saved like a ``cryoframe pretrain`` encoder; the code
    path measured — store streaming, resampling, batched encoding, streaming ``.npz`` writing —
    is the one a 32³ store goes through. The stores are deleted afterwards. Full: 10⁴ and 10⁵;
    quick: 10³ and 10⁴ (reported under the same names, marked in ``details``).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from cryoframe.bench.results import SuiteResult, progress
from cryoframe.data import map_path
from cryoframe.fourier.filters import fourier_crop
from cryoframe.geometry.rotations import random_rotations
from cryoframe.geometry.transforms import rotate_volumes
from cryoframe.io.mrc import read_mrc, write_mrc
from cryoframe.io.star import read_particles, write_star
from cryoframe.io.store import SubtomoStore
from cryoframe.models.pair import APTPairEncoder
from cryoframe.testing.fuzz import fuzz_files
from cryoframe.train.loop import save_encoder

__all__ = ["run", "fuzz_sources", "kill_resume", "KILL_CASES"]


def _data_dir() -> Path | None:
    here = Path(__file__).resolve()
    for parent in here.parents:
        cand = parent / "tests" / "data"
        if (cand / "EMD-3197.map").exists():
            return cand
    return None


def fuzz_sources(data: Path, work: Path) -> dict[str, list[tuple[Path, bool]]]:
    """Real files per format: ``(path, is particle STAR)``; the mmCIF is written into ``work``."""
    import gemmi

    work.mkdir(parents=True, exist_ok=True)
    st = gemmi.read_structure(str(data / "structures" / "1ake.pdb"))
    st.setup_entities()
    cif = work / "1ake.cif"
    st.make_mmcif_document().write_file(str(cif))
    wt = data / "particles" / "warptools"
    return {
        "mrc": [(data / "EMD-3197.map", False), (wt / "reconstruct_box32_12A.mrc", False)],
        "star": [(data / "particles" / "relion31" / "relion31.star", True),
                 (wt / "warptools_test_4-tomos_10-ptcls_box-32_angpix-12.star", True),
                 (data / "starfile" / "rln3.1_data_style.star", False),
                 (data / "starfile" / "postprocess.star", False)],
        "tbl": [(data / "dynamo" / "t_double.tbl", False)],
        "pdb": [(data / "structures" / "1ake.pdb", False), (cif, False)],
    }


# ------------------------------------------------------------------ kill and resume
def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "cryoframe.cli.main", *args]


def _env() -> dict:
    env = dict(os.environ)
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    return env


def _run_to_end(cmd: list[str], cwd: Path, timeout: float = 600) -> None:
    res = subprocess.run(cmd, cwd=cwd, env=_env(), capture_output=True, text=True,
                         timeout=timeout)
    if res.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[3:])} failed: {res.stderr[-2000:]}")


def _run_and_kill(cmd: list[str], cwd: Path, when: Callable[[], bool],
                  timeout: float = 300) -> bool:
    """Start ``cmd``; SIGKILL it as soon as ``when()`` holds. True if it was killed."""
    proc = subprocess.Popen(cmd, cwd=cwd, env=_env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    t0 = time.monotonic()
    try:
        while proc.poll() is None and time.monotonic() - t0 < timeout:
            try:
                ready = when()
            except Exception:  # noqa: BLE001 - a marker may be half visible while written
                ready = False
            if ready:
                proc.send_signal(signal.SIGKILL)
                proc.wait()
                return True
            time.sleep(0.02)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return False


def _n_files(folder: Path, pattern: str) -> int:
    return len(list(folder.glob(pattern))) if folder.exists() else 0


def _mtime_changes(path: Path, state: dict, k: int) -> bool:
    """True once ``path`` has been (re)written ``k`` times since the first call."""
    if not path.exists():
        return False
    m = path.stat().st_mtime_ns
    if state.get("last") != m:
        state["last"] = m
        state["n"] = state.get("n", 0) + 1
    return state["n"] >= k


def _case_simulate(root: Path):
    cfg = root / "sim.yaml"
    cfg.write_text("structures: [3QM1, 3H84]\nn_per_class: 256\npath: fast\nunit_size: 8\n"
                   "seed: 1\n")

    def cmd(out: Path):
        return _cli("simulate", "subtomograms", "--out", str(out / "s.zarr"), "--config",
                    str(cfg))

    def kills(out: Path):
        done = out / "s.zarr" / "done"
        return [lambda: _n_files(done, "unit-*") >= 5, lambda: _n_files(done, "unit-*") >= 30,
                lambda: _n_files(done, "unit-*") >= 55]

    def compare(a: Path, b: Path) -> bool:

        sa, sb = SubtomoStore(a / "s.zarr"), SubtomoStore(b / "s.zarr")
        ta, tb = sa.read_table(), sb.read_table()
        va = np.asarray(sa.group["volumes"][:])
        vb = np.asarray(sb.group["volumes"][:])
        return bool(ta.equals(tb) and np.array_equal(va, vb) and len(sb.done_units())
                    == sb.n_units)

    return cmd, kills, compare


def _case_pretrain(root: Path):
    cfg = root / "pre.yaml"
    cfg.write_text(
        "model: apt_pair_cpu\n"
        "model_overrides: {embed_dim: 32, depth: 1, num_heads: 4, head_hidden: 32}\n"
        "data: {kind: fastpath, families: {}, singles: [3QM1, 3H84], n_rows: 40, "
        "knn_holdout: 8}\n"
        "steps: 16\nbatch_size: 4\nlr: 0.001\nwarmup_steps: 1\nproj_hidden: 32\nproj_dim: 16\n"
        "sinkhorn_iters: 10\ncheckpoint_every: 1\nlog_every: 1\nknn_every: 0\nprogress: false\n")

    def cmd(out: Path):
        return _cli("pretrain", "--config", str(cfg), "--out", str(out / "run"))

    def kills(out: Path):
        ck = out / "run" / "checkpoint.pt"
        s1, s2 = {}, {}
        return [lambda: (out / "run" / "densities.pt").exists(),
                lambda: _mtime_changes(ck, s1, 3), lambda: _mtime_changes(ck, s2, 5)]

    def compare(a: Path, b: Path) -> bool:
        return _same_weights(a / "run" / "encoder.pt", b / "run" / "encoder.pt", "state_dict")

    return cmd, kills, compare


def _case_particles(root: Path):
    def cmd(out: Path):
        return _cli("particles", "pretrain", "--out-dir", str(out / "pp"), "--n-per-density",
                    "4", "--steps", "60", "--batch-size", "8", "--no-ranker", "--warmup-steps",
                    "2", "--threads", "1")

    def kills(out: Path):
        pp = out / "pp"
        s1 = {}
        t_pool: dict = {}

        def after_pool(delay: float):
            def f():
                if not (pp / "pool.pt").exists():
                    return False
                t_pool.setdefault(delay, time.monotonic())
                return time.monotonic() - t_pool[delay] > delay
            return f

        return [after_pool(1.0), lambda: _mtime_changes(pp / "moco_ckpt.pt", s1, 1)]

    def compare(a: Path, b: Path) -> bool:
        return _same_weights(a / "pp" / "particle_vit_cpu.pt", b / "pp" / "particle_vit_cpu.pt",
                             None)

    return cmd, kills, compare


def _case_average(root: Path):
    import pandas as pd
    import torch


    d = torch.as_tensor(read_mrc(map_path("1U6G")).data, dtype=torch.float32)
    c = d.shape[0] // 2
    ref = fourier_crop(d[c - 16:c + 16, c - 16:c + 16, c - 16:c + 16], 16)
    gen = torch.Generator().manual_seed(0)
    parts = rotate_volumes(ref, random_rotations(12, generator=gen))
    parts = parts + 0.3 * parts.std() * torch.randn(parts.shape, generator=gen)
    rows = []
    for i in range(len(parts)):
        write_mrc(root / "sub" / f"p{i:02d}.mrc", parts[i].numpy(), 20.0)
        rows.append({"rlnImageName": f"sub/p{i:02d}.mrc"})
    star = root / "parts.star"
    write_star(star, {"particles": pd.DataFrame(rows)})

    def cmd(out: Path):
        return _cli("average", str(star), "--out", str(out / "avg"), "--step-deg", "40",
                    "--max-iterations", "4", "--no-wedge")

    def kills(out: Path):
        ck = out / "avg" / "average_checkpoint.pt"
        s1, s2 = {}, {}
        return [lambda: _mtime_changes(ck, s1, 1), lambda: _mtime_changes(ck, s2, 2)]

    def compare(a: Path, b: Path) -> bool:

        ma = read_mrc(a / "avg" / "map.mrc").data
        mb = read_mrc(b / "avg" / "map.mrc").data
        pa = read_particles(a / "avg" / "particles.star").particles
        pb = read_particles(b / "avg" / "particles.star").particles
        cols = ["rlnAngleRot", "rlnAngleTilt", "rlnAnglePsi"]
        return bool(np.allclose(ma, mb, atol=1e-5 * float(np.abs(ma).max()))
                    and np.allclose(pa[cols].to_numpy(), pb[cols].to_numpy(), atol=1e-3))

    return cmd, kills, compare


def _same_weights(a: Path, b: Path, key: str | None) -> bool:
    import torch

    wa = torch.load(a, map_location="cpu", weights_only=True)
    wb = torch.load(b, map_location="cpu", weights_only=True)
    if key is None:
        key = next(k for k in ("state_dict", "model", "encoder") if k in wa)
    sa, sb = wa[key], wb[key]
    return sa.keys() == sb.keys() and all(torch.allclose(sa[k].float(), sb[k].float(),
                                                         atol=1e-6) for k in sa)


KILL_CASES = {"simulate subtomograms": _case_simulate, "pretrain": _case_pretrain,
              "particles pretrain": _case_particles, "average": _case_average}


def kill_resume(name: str, root: Path) -> dict:
    """Run case ``name`` uninterrupted and with SIGKILLs; returns kills made and equality."""
    root.mkdir(parents=True, exist_ok=True)
    cmd, kills, compare = KILL_CASES[name](root)
    ref, test = root / "reference", root / "killed"
    _run_to_end(cmd(ref), root)
    n_killed = 0
    for when in kills(test):
        n_killed += _run_and_kill(cmd(test), root, when)
    _run_to_end(cmd(test), root)  # the final restart finishes the job
    return {"kills": n_killed, "equal": compare(ref, test)}


# ------------------------------------------------------------------ bounded memory
def _tiny_encoder(path: Path) -> None:
    import torch


    torch.manual_seed(0)
    enc = APTPairEncoder(volume_size=8, patch_size=4, embed_dim=16, depth=1, num_heads=2,
                         head_hidden=16)
    save_encoder(path, enc, {"model": "tiny-bench", "steps": 0, "seed": 0,
                             "voxel_size_angstrom": 10.0})


def _make_store(path: Path, n: int, seed: int) -> None:
    import pandas as pd

    from cryoframe.io.store import SubtomoStore

    unit = 2000
    store = SubtomoStore.create(path, n, 8, unit_size=unit, arrays={"volumes": "float32"},
                                attrs={"voxel_size_angstrom": 10.0, "class_names": ["a", "b"]})
    rng = np.random.default_rng(seed)
    for u in store.pending_units():
        rows = store.unit_rows(u)
        vols = np.zeros((len(rows), 8, 8, 8), np.float32)
        vols[:, 3:5, 3:5, 3:5] = rng.normal(size=(len(rows), 1, 1, 1)).astype(np.float32)
        table = pd.DataFrame({"class_id": np.asarray(rows) % 2})
        store.write_unit(u, {"volumes": vols}, table)


def _peak_rss_mb(cmd: list[str], cwd: Path) -> float:
    # VmHWM (peak RSS of this address space) rather than ru_maxrss: Linux carries ru_maxrss
    # over from the parent across fork + exec, so a large parent would hide the child's peak.
    code = ("import sys; sys.argv = " + repr(["cryoframe", *cmd]) + "\n"
            "from cryoframe.cli.main import main\n"
            "rc = main(sys.argv[1:])\n"
            "hwm = [ln for ln in open('/proc/self/status') if ln.startswith('VmHWM')]\n"
            "print('PEAK_RSS_KB', hwm[0].split()[1])\n"
            "sys.exit(rc)\n")
    res = subprocess.run([sys.executable, "-c", code], cwd=cwd, env=_env(), capture_output=True,
                         text=True, timeout=3600)
    if res.returncode != 0:
        raise RuntimeError(res.stderr[-2000:])
    kb = [ln for ln in res.stdout.splitlines() if ln.startswith("PEAK_RSS_KB")][-1].split()[1]
    return float(kb) / 1024.0


def embed_memory(sizes: tuple[int, int], root: Path, seed: int) -> dict:
    """Peak RSS (MB) of ``cryoframe embed`` and ``cryoframe average`` over stores of ``sizes``
    rows (one fresh subprocess per command and size); stores are deleted afterwards.
    """
    root.mkdir(parents=True, exist_ok=True)
    weights = root / "tiny_encoder.pt"
    _tiny_encoder(weights)
    out = {}
    for n in sizes:
        store = root / f"store_{n}.zarr"
        progress(f"robustness: writing a {n}-row store")
        _make_store(store, n, seed)
        progress(f"robustness: embedding {n} rows")
        t0 = time.perf_counter()
        rss = _peak_rss_mb(["embed", str(store), "--out", str(root / f"e{n}.npz"), "--weights",
                            str(weights), "--batch-size", "256"], root)
        with np.load(root / f"e{n}.npz") as z:
            assert z["embeddings"].shape == (n, 32), z["embeddings"].shape
        out[n] = {"embed_rss_mb": rss, "embed_seconds": time.perf_counter() - t0}
        progress(f"robustness: averaging {n} rows")
        t0 = time.perf_counter()
        out[n]["average_rss_mb"] = _peak_rss_mb(
            ["average", str(store), "--out", str(root / f"avg{n}"), "--step-deg", "90",
             "--max-iterations", "1", "--no-wedge"], root)
        out[n]["average_seconds"] = time.perf_counter() - t0
        out[n]["rss_mb"] = max(out[n]["embed_rss_mb"], out[n]["average_rss_mb"])
        shutil.rmtree(store)
        shutil.rmtree(root / f"avg{n}", ignore_errors=True)
        (root / f"e{n}.npz").unlink()
    return out


# ------------------------------------------------------------------ the suite
def run(quick: bool, out_dir: Path, seed: int) -> SuiteResult:
    """Fuzz the readers, kill and resume four commands, measure embed memory (see module)."""
    out_dir = Path(out_dir)
    metrics: dict[str, float | None] = {}
    units: dict[str, str] = {}
    details: dict = {}
    n_mut = 60 if quick else 1000
    data = _data_dir()
    with tempfile.TemporaryDirectory(prefix="cryoframe_robust_") as tmp:
        tmp = Path(tmp)
        if data is None:
            details["fuzz"] = "tests/data not found (not a source checkout): fuzzing skipped"
            for fmt in ("mrc", "star", "tbl", "pdb"):
                metrics[f"mutants_{fmt}"] = metrics[f"failures_{fmt}"] = None
        else:
            sources = fuzz_sources(data, tmp / "src")
            for fmt, src in sources.items():
                progress(f"robustness: {n_mut} {fmt} mutants")
                res = fuzz_files(src, fmt, n_mut, seed, tmp / "fuzz" / fmt)
                metrics[f"mutants_{fmt}"] = res["mutants"]
                metrics[f"failures_{fmt}"] = res["failures"]
                units[f"mutants_{fmt}"] = units[f"failures_{fmt}"] = "files"
                details[f"fuzz_{fmt}"] = {k: res[k] for k in ("read", "refused", "examples")}
                details[f"fuzz_{fmt}"]["sources"] = [p.name for p, _ in src]
        passed, total, kr = 0, 0, {}
        for name in KILL_CASES:
            progress(f"robustness: kill and resume '{name}'")
            t0 = time.perf_counter()
            try:
                res = kill_resume(name, tmp / "kill" / name.replace(" ", "_"))
            except Exception as exc:  # noqa: BLE001 - a crash is a failed case, reported
                res = {"kills": 0, "equal": False, "error": f"{type(exc).__name__}: {exc}"}
            res["seconds"] = round(time.perf_counter() - t0, 1)
            kr[name] = res
            total += 1
            passed += int(bool(res["equal"]) and res["kills"] >= 1)
        metrics["kill_resume_total"] = total
        metrics["kill_resume_passed"] = passed
        details["kill_resume"] = kr
        sizes = (1000, 10000) if quick else (10000, 100000)
        mem = embed_memory(sizes, tmp / "mem", seed)
        metrics["rss_mb_1e4"] = mem[sizes[0]]["rss_mb"]
        metrics["rss_mb_1e5"] = mem[sizes[1]]["rss_mb"]
        for cmd in ("embed", "average"):
            metrics[f"{cmd}_rss_mb_1e4"] = mem[sizes[0]][f"{cmd}_rss_mb"]
            metrics[f"{cmd}_rss_mb_1e5"] = mem[sizes[1]][f"{cmd}_rss_mb"]
            units[f"{cmd}_rss_mb_1e4"] = units[f"{cmd}_rss_mb_1e5"] = "MB"
        units.update(rss_mb_1e4="MB", rss_mb_1e5="MB", kill_resume_total="commands",
                     kill_resume_passed="commands")
        details["memory"] = {"sizes": list(sizes), "runs": {str(k): v for k, v in mem.items()},
                             "ratio": mem[sizes[1]]["rss_mb"] / mem[sizes[0]]["rss_mb"],
                             "box": 8, "note": "quick: 1e3 and 1e4 rows" if quick else
                             "1e4 and 1e5 rows"}
    details["requirement"] = ("issue 15 (not a paper figure): failures_<fmt> = 0; "
                              "kill_resume_passed = kill_resume_total >= 4; "
                              "rss_mb_1e5 <= 1.2 x rss_mb_1e4")
    return SuiteResult(metrics=metrics, units=units, details=details)
