"""The run directory: its layout and the functions that write and read it (the callbacks that
write it during training are in ``platform.run.callbacks``; many runs as records, local or W&B, in
``platform.after.run_records``).

``runs/<name>/``
    ``config.yaml``       the resolved ExperimentConfig (written atomically; a resume may change only
                          the keys of ``platform.run.schema.RESUME_MAY_CHANGE``)
    ``env.json``          git commit, torch/CUDA/GPU, host, command line
    ``metrics.jsonl``     one JSON line per finished epoch (accuracies in percent), each epoch once
    ``summary.json``      model, data, seed, epochs, best/final val top-1, final top-5, wall time summed
                          over ``segments``, world size, host, pid, heartbeat, status (running | finished |
                          interrupted | diverged | failed; a ``running`` run whose writer is gone reads
                          as ``lost``), and for a failure the exception and the last log lines
    ``checkpoints/``      ``last.ckpt``: the newest resumable state, written at every epoch end and every
                          ``checkpoint.every_n_steps`` / ``every_minutes`` inside an epoch (and on SIGUSR1,
                          SIGTERM, Ctrl-C); ``best-epochNNN.ckpt``: the best epoch by val top-1.  Each
                          has a ``<file>.sha256.json`` digest, checked before a resume or ``model.init``
    ``.lock``             pid and host of the one process writing the directory (heartbeat: its mtime)
    ``confusion.csv/.png`` the last validation epoch's confusion matrix (per-class top-1)
    ``eval-<protocol>.json`` ``platform.after.evaluate``'s results (center | flip | 10crop), if evaluated
    ``wandb/``            the W&B run (offline runs sync with ``wandb sync``)

Every file is written under a temporary name and renamed, so a kill at any moment leaves the
previous version; ``metrics.jsonl`` is appended one whole line per write (a torn last line from a
crash mid-write is skipped with a warning by the readers).  ``platform.papers.reproduce`` reads these
records, with or without W&B.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import errno
import hashlib
import json
import logging
import math
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, ClassVar

import lightning as L
import torch

from datamodules.beton import atomic_path, write_json_atomic

log = logging.getLogger("platform.runs")

# what platform.run.callbacks.ThroughputMonitor logs each epoch
PERF_KEYS = (
    "perf/train_img_s",
    "perf/val_img_s",
    "perf/data_wait_s",
    "perf/compute_s",
    "perf/data_wait_frac",
    "perf/peak_mem_mib",
)
METRIC_KEYS = (
    "train/loss",
    "train/top1",
    "val/loss",
    "val/top1",
    "val/top5",
    "val/top1_best",
    "lr",
    "val_ema/loss",
    "val_ema/top1",
    "val_ema/top5",
    *PERF_KEYS,
)
DIGEST_SUFFIX = ".sha256.json"


@dataclasses.dataclass(frozen=True)
class RunDir:
    """One run directory's layout (the module docstring): the only place its file names are
    spelled (issue 29).  ``RunDir(path).summary`` is ``path/summary.json``, and so on."""

    path: Path

    CHECKPOINTS: ClassVar[str] = "checkpoints"
    LAST: ClassVar[str] = "last.ckpt"
    LOCK: ClassVar[str] = ".lock"

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", Path(self.path))

    @classmethod
    def of_checkpoint(cls, ckpt: str | os.PathLike) -> "RunDir":
        """The run of ``runs/<name>/checkpoints/<file>.ckpt`` (or of a file directly inside one)."""
        ckpt = Path(ckpt)
        return cls(ckpt.parent.parent if cls.holds(ckpt) else ckpt.parent)

    @classmethod
    def holds(cls, ckpt: str | os.PathLike) -> bool:
        """``ckpt`` lies in a run's ``checkpoints/`` directory."""
        return Path(ckpt).parent.name == cls.CHECKPOINTS

    @property
    def config(self) -> Path:
        return self.path / "config.yaml"

    @property
    def env(self) -> Path:
        return self.path / "env.json"

    @property
    def metrics(self) -> Path:
        return self.path / "metrics.jsonl"

    @property
    def summary(self) -> Path:
        return self.path / "summary.json"

    @property
    def train_log(self) -> Path:
        return self.path / "train.log"

    @property
    def lock(self) -> Path:
        return self.path / self.LOCK

    @property
    def checkpoints(self) -> Path:
        return self.path / self.CHECKPOINTS

    @property
    def last(self) -> Path:
        return self.checkpoints / self.LAST

    def evaluation(self, protocol: str) -> Path:
        """``eval-<protocol>.json``: ``python -m platform.evaluate``'s record of one protocol."""
        return self.path / f"eval-{protocol}.json"

    @staticmethod
    def evaluation_confusion_stem(protocol: str) -> str:
        return f"eval-{protocol}-confusion"

    def evaluations(self) -> list[Path]:
        return sorted(self.path.glob("eval-*.json"))

    def read_config(self) -> Any:
        """The run's ``config.yaml`` as an ``ExperimentConfig``, read as it was written (no
        overrides, ``run.name`` and ``resume`` kept); None where the run has none.  An unreadable
        one is a one-line ``ConfigError`` naming the file (callers add what to do)."""
        import yaml

        from platform.run.config import from_dict
        from platform.run.schema import ConfigError

        if not self.config.is_file():
            return None
        try:
            return from_dict(yaml.safe_load(self.config.read_text()) or {})
        except Exception as e:  # noqa: BLE001 -- not YAML, or keys of another config version
            raise ConfigError(
                f"{self.config}: cannot be read as a configuration ({type(e).__name__}: "
                f"{' '.join(str(e).split())})"
            ) from None


class RunWriteError(RuntimeError):
    """A record or checkpoint that could not be written (disk full, read-only file system)."""

    def __init__(self, path: str | os.PathLike, error: BaseException | str) -> None:
        self.path = Path(path)
        if isinstance(error, OSError):
            code = errno.errorcode.get(error.errno or 0, "")
            what = f"{error.strerror or error}" + (f" ({code})" if code else "")
        else:
            what = str(error)
        super().__init__(f"cannot write {self.path}: {what}")


class CheckpointError(ValueError):
    """A checkpoint file that is empty, truncated, altered or unreadable."""


class RunBusyError(RuntimeError):
    """The run directory is being written by another live process."""


def last_checkpoint(run_dir: Path) -> Path | None:
    path = RunDir(run_dir).last
    return path if path.is_file() else None


def _fsync_dir(directory: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _finite(v: float) -> float | None:
    return round(v, 6) if math.isfinite(v) else None  # json.dumps would write a bare NaN (not JSON)


# ---------------------------------------------------------------------------- reading records
def read_metrics(run_dir: Path) -> list[dict[str, Any]]:
    """The epoch lines of ``metrics.jsonl``; a line that is not JSON (torn by a crash mid-write) is
    skipped with a warning."""
    path = RunDir(run_dir).metrics
    if not path.is_file():
        return []
    rows = []
    for n, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError:
            row = None
        if not isinstance(row, dict) or not isinstance(row.get("epoch"), int):
            log.warning(
                "%s: line %d is not a complete record (torn by a crash while it was written?); "
                "skipped",
                path,
                n,
            )
            continue
        rows.append(row)
    return rows


def read_summary(run_dir: Path) -> dict[str, Any] | None:
    path = RunDir(run_dir).summary
    try:
        return json.loads(path.read_text()) if path.is_file() else None
    except (OSError, ValueError):
        log.warning("%s is not readable JSON; treating the run as having no summary", path)
        return None


def run_status(run_dir: Path, summary: dict[str, Any] | None = None) -> str:
    """The summary's status, except that a ``running`` run whose writer is gone is ``lost``."""
    summary = read_summary(run_dir) if summary is None else summary
    status = (summary or {}).get("status", "running")
    if status == "running" and lock_holder(run_dir) is None:
        return "lost"
    return status


def read_evaluations(run_dir: Path) -> dict[str, dict[str, Any]]:
    """protocol -> the ``eval-<protocol>.json`` record ``platform.after.evaluate`` wrote into a run directory."""
    out = {}
    for path in sorted(RunDir(run_dir).evaluations()):
        try:
            rec = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if (
            isinstance(rec, dict)
            and isinstance(rec.get("protocol"), str)
            and rec["protocol"]
            and isinstance(rec.get("top1_err"), (int, float))
            and not isinstance(rec["top1_err"], bool)
        ):
            out[rec["protocol"]] = rec
        else:  # one garbage record costs that record, not the report
            log.warning("skipping %s: not an evaluation record (a protocol name, a top1_err)", path)
    return out


def _write_lines(path: Path, rows: list[dict[str, Any]]) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text("".join(json.dumps(r) + "\n" for r in rows))


def environment() -> dict[str, Any]:
    """What a reported number needs beside it: commit, versions, hardware (STYLE rule 14)."""
    root = Path(__file__).resolve().parents[2]
    try:
        commit = (
            subprocess.run(
                ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10
            ).stdout.strip()
            or None
        )
        dirty = bool(
            subprocess.run(
                ["git", "status", "--porcelain"],
                cwd=root,
                capture_output=True,
                text=True,
                timeout=10,
            ).stdout.strip()
        )
    except (OSError, subprocess.SubprocessError):
        commit, dirty = None, None
    import lightning

    import platform

    return {
        "git_commit": commit,
        "git_dirty": dirty,
        "argv": sys.argv,
        "host": platform.node(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "lightning": lightning.__version__,
        "cuda": torch.version.cuda if torch.cuda.is_available() else None,
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "slurm_job_id": os.environ.get("SLURM_JOB_ID"),
        # the allocation; per-rank host, node rank and rendezvous address: "ranks" (platform.run.distributed.NodeCheck)
        "slurm_nodelist": os.environ.get("SLURM_JOB_NODELIST"),
    }


# ---------------------------------------------------------------------------- summary
class LogTail(logging.Handler):
    """The last ``n`` log records in memory, for the summary of a run that fails."""

    def __init__(self, n: int = 40) -> None:
        super().__init__(logging.INFO)
        self.lines: collections.deque[str] = collections.deque(maxlen=n)
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        with contextlib.suppress(Exception):
            self.lines.append(self.format(record))

    def attach(self) -> "LogTail":
        for name in (
            "",
            "lightning.pytorch",
            "lightning.fabric",
        ):  # lightning's loggers do not propagate
            logging.getLogger(name).addHandler(self)
        return self

    def detach(self) -> None:
        for name in ("", "lightning.pytorch", "lightning.fabric"):
            logging.getLogger(name).removeHandler(self)


def error_record(e: BaseException, tail: LogTail | None = None) -> dict[str, Any]:
    import traceback

    frames = traceback.extract_tb(e.__traceback__)
    return {
        "type": type(e).__name__,
        "message": str(e),
        "where": f"{frames[-1].filename}:{frames[-1].lineno}" if frames else None,
        "log_tail": list(tail.lines) if tail is not None else [],
    }


class RunSummary:
    """``summary.json`` of one run across its segments (each start of ``platform.run.train`` on it):
    ``wall_time_s`` sums the segments (a killed one counts up to its last heartbeat)."""

    def __init__(
        self,
        run_dir: Path,
        base: dict[str, Any],
        world_size: int,
        previous: dict[str, Any] | None = None,
    ) -> None:
        self.run_dir, self.base, self.world_size = Path(run_dir), dict(base), world_size
        previous = previous or {}
        self.prior_s = float(previous.get("wall_time_s") or 0.0)
        self.segment = int(previous.get("segments") or (1 if previous else 0)) + 1
        self.started = time.time()

    def write(self, status: str, **extra: Any) -> dict[str, Any]:
        now = time.time()
        s = summarize(
            self.run_dir,
            self.base,
            status,
            self.prior_s + now - self.started,
            self.world_size,
            segments=self.segment,
            **extra,
        )
        return s

    def heartbeat(self) -> None:
        """Refreshed at every epoch end and periodic checkpoint: a live run is told from a lost one."""
        try:
            self.write("running")
        except RunWriteError as e:
            log.warning("%s", e)


def summarize(
    run_dir: Path,
    base: dict[str, Any],
    status: str,
    wall_time_s: float,
    world_size: int,
    **extra: Any,
) -> dict[str, Any]:
    import platform

    rows = read_metrics(run_dir)
    val = [r["val/top1"] for r in rows if r.get("val/top1") is not None]
    last = rows[-1] if rows else {}
    summary = dict(base)
    now = time.time()
    summary.update(
        {
            "epochs": len(rows),
            "best_val_top1": max(val) if val else None,
            "final_val_top1": last.get("val/top1"),
            "final_val_top5": last.get("val/top5"),
            "wall_time_s": round(wall_time_s, 2),
            "segments": 1,
            "world_size": world_size,
            "status": status,
            "run_dir": str(run_dir),
            "host": platform.node(),
            "pid": os.getpid(),
            "heartbeat": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(now)),
            "heartbeat_unix": round(now, 1),
            **performance_summary(run_dir, rows),
        }
    )
    summary.update(extra)
    if status != "running":
        summary["finished_at"] = time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(now))
    path = RunDir(run_dir).summary
    try:
        write_json_atomic(path, summary)
    except OSError as e:
        raise RunWriteError(path, e) from None
    return summary


def performance_summary(run_dir: Path, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Best epoch and its checkpoint, mean train images/s and peak memory over the recorded epochs."""
    best = max((r for r in rows if "val/top1" in r), key=lambda r: r["val/top1"], default=None)
    ckpts = sorted(RunDir(run_dir).checkpoints.glob("best-epoch*.ckpt"))
    rates = [r["perf/train_img_s"] for r in rows if "perf/train_img_s" in r]
    mems = [r["perf/peak_mem_mib"] for r in rows if "perf/peak_mem_mib" in r]
    return {
        "best_epoch": best["epoch"] if best else None,
        "best_checkpoint": str(ckpts[-1]) if ckpts else None,
        "mean_train_img_s": round(sum(rates) / len(rates), 1) if rates else None,
        "peak_mem_mib": round(max(mems), 1) if mems else None,
    }


# ---------------------------------------------------------------------------- one writer per run dir
LOCK_BEAT_S = 15.0  # the holder touches the lock this often
LOCK_STALE_S = 120.0  # a lock of another host untouched this long belongs to a dead process


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def lock_holder(run_dir: Path) -> dict[str, Any] | None:
    """``{"pid", "host", "since"}`` of the live process holding ``run_dir``'s lock, else None (no lock,
    or a stale one: a dead pid on this host, or no heartbeat for LOCK_STALE_S from another host).

    A lock without a readable owner (empty, torn, written by hand) counts as in use -- ``{"pid":
    None, ...}`` -- until its mtime is LOCK_STALE_S old: :class:`RunLock` never lets one appear
    empty, so only a writer we cannot identify leaves one."""
    import platform

    path = RunDir(run_dir).lock
    try:
        mtime = path.stat().st_mtime
        holder = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        holder = None
    if not isinstance(holder, dict) or not isinstance(holder.get("pid"), int):
        fresh = time.time() - mtime < LOCK_STALE_S
        return {"pid": None, "host": None, "since": None} if fresh else None
    if holder.get("host") == platform.node():
        return holder if _pid_alive(holder["pid"]) else None
    return holder if time.time() - mtime < LOCK_STALE_S else None


def _busy_error(path: Path, holder: dict[str, Any]) -> "RunBusyError":
    if holder.get("pid") is None:
        return RunBusyError(
            f"run directory {path.parent} is locked by {path}, which names no owner (being written, "
            f"or made by hand); if no process is using the directory, remove it (rm {path}) and "
            f"start again, or choose another run.name"
        )
    return RunBusyError(
        f"run directory {path.parent} is in use by pid {holder['pid']} on {holder.get('host')} "
        f"(since {holder.get('since')}); wait for it to end, stop it, or choose another run.name"
    )


def _earlier_attempt_of_this_job(holder: dict[str, Any]) -> bool:
    """A requeued SLURM job (restart count >= 1) finding the lock of its own previous attempt, which may
    still look alive from another node for LOCK_STALE_S: SLURM ended that attempt before starting this one."""
    job = os.environ.get("SLURM_JOB_ID")
    try:
        restarts = int(os.environ.get("SLURM_RESTART_COUNT") or 0)
    except ValueError:
        restarts = 0
    return bool(job) and holder.get("slurm_job") == job and restarts >= 1


class RunLock:
    """The one-writer lock of a run directory (``<run dir>/.lock``: pid, host, start time).

    Written whole to a private file and hard-linked into place (``link`` fails where ``.lock``
    exists), so no process ever sees it empty; a lock left by a dead process (SIGKILL, a lost node) is taken over
    with a warning.  A daemon thread touches it every LOCK_BEAT_S, which is how another host
    tells a live holder from a dead one.
    """

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = Path(run_dir)
        self.path = RunDir(self.run_dir).lock
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.held = False

    def acquire(self) -> "RunLock":
        import platform

        me = {
            "pid": os.getpid(),
            "host": platform.node(),
            "since": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "slurm_job": os.environ.get("SLURM_JOB_ID"),
        }
        try:
            self.run_dir.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise RunWriteError(e.filename or self.run_dir, e) from None
        for _ in range(3):
            try:
                self._link_complete(me)  # the lock appears whole: there is no empty .lock window
            except FileExistsError:
                holder = lock_holder(self.run_dir)
                if holder is not None and not _earlier_attempt_of_this_job(holder):
                    raise _busy_error(self.path, holder) from None
                try:
                    old = json.loads(self.path.read_text())
                    log.warning(
                        "taking over the lock of %s from pid %s on %s, which is no longer running",
                        self.run_dir,
                        old.get("pid"),
                        old.get("host"),
                    )
                except (OSError, ValueError, AttributeError):
                    log.warning(
                        "removing %s: it names no owner and was untouched for %.0f s",
                        self.path,
                        LOCK_STALE_S,
                    )
                with contextlib.suppress(FileNotFoundError):
                    self.path.unlink()
                continue
            except OSError as e:
                raise RunWriteError(self.path, e) from None
            self.held = True
            self._thread = threading.Thread(
                target=self._beat, name="run-lock-heartbeat", daemon=True
            )
            self._thread.start()
            return self
        raise RunBusyError(f"could not take the lock {self.path} (another process keeps taking it)")

    def _link_complete(self, me: dict[str, Any]) -> None:
        """Write the owner to a private file, then hard-link it to ``.lock`` (fails if one exists)."""
        tmp = self.path.with_name(f"{RunDir.LOCK}.{os.getpid()}.{os.urandom(4).hex()}.tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            try:
                os.write(fd, json.dumps(me).encode())
            finally:
                os.close(fd)
            os.link(tmp, self.path)
        finally:
            with contextlib.suppress(OSError):
                tmp.unlink()

    def _beat(self) -> None:
        while not self._stop.wait(LOCK_BEAT_S):
            with contextlib.suppress(OSError):
                os.utime(self.path)

    def release(self) -> None:
        self._stop.set()
        if self.held:
            with contextlib.suppress(OSError):
                self.path.unlink()
            self.held = False


# ---------------------------------------------------------------------------- checkpoint files
def digest_path(ckpt: Path) -> Path:
    return Path(ckpt).with_name(Path(ckpt).name + DIGEST_SUFFIX)


def file_sha256(path: str | os.PathLike) -> str:
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def _read_digests(ckpt: Path) -> list[dict[str, Any]] | None:
    try:
        entries = json.loads(digest_path(ckpt).read_text()).get("entries")
    except (OSError, ValueError, AttributeError):
        return None
    return (
        [e for e in entries if isinstance(e, dict) and "sha256" in e]
        if isinstance(entries, list)
        else None
    )


def save_checkpoint(trainer: L.Trainer, path: Path, kind: str) -> None:
    """Save the trainer's resumable state to ``path`` atomically, with its digest; collective.

    Rank 0 writes ``.<name>.tmp``, fsyncs it, writes the digest file (holding the new digest and the
    previous one, so a kill between the two renames leaves a pair that still verifies) and renames.
    A failed write (ENOSPC, EROFS) removes the temporary file, leaves the previous checkpoint as it
    was, and raises :class:`RunWriteError` on every rank (no rank is left waiting in a barrier).
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    checkpoint = trainer._checkpoint_connector.dump_checkpoint(False)
    error: RunWriteError | None = None
    if trainer.is_global_zero:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            trainer.strategy.checkpoint_io.save_checkpoint(checkpoint, tmp)
            with open(tmp, "rb+") as fh:
                os.fsync(fh.fileno())
            entry = {
                "sha256": file_sha256(tmp),
                "bytes": tmp.stat().st_size,
                "epoch": trainer.current_epoch,
                "global_step": trainer.global_step,
                "kind": kind,
                "saved_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            }
            old = (_read_digests(path) or [])[:1] if path.is_file() else []
            write_json_atomic(digest_path(path), {"file": path.name, "entries": [entry, *old]})
            os.replace(tmp, path)
            _fsync_dir(path.parent)
        except OSError as e:
            error = RunWriteError(path, e)
        finally:
            with contextlib.suppress(OSError):
                tmp.unlink()
    if trainer.strategy.reduce_boolean_decision(error is not None, all=False):
        raise error or RunWriteError(path, "the write failed on global rank 0")


def remove_checkpoint(path: Path) -> None:
    for p in (Path(path), digest_path(path)):
        with contextlib.suppress(FileNotFoundError):
            p.unlink()


def verify_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Check a checkpoint before it is loaded; return what its digest file says (epoch, step, kind).

    With a digest file: the size and SHA-256 must match one of its entries.  Without one (written
    by an earlier version, or elsewhere): it must load with ``weights_only=True`` and hold only
    finite weights.  Raises :class:`CheckpointError` naming the file and the problem.
    """
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as e:
        raise CheckpointError(f"{path}: cannot read it ({e.strerror or e})") from None
    if size == 0:
        raise CheckpointError(f"{path}: empty file (0 bytes)")
    entries = _read_digests(path)
    if entries is not None:
        for e in entries:
            if e.get("bytes") == size and e["sha256"] == file_sha256(path):
                return e
        want = entries[0] if entries else {}
        why = (
            f"{size} bytes, its digest file says {want.get('bytes')} (truncated?)"
            if want.get("bytes") != size
            else "SHA-256 differs from its digest file (bytes changed on disk)"
        )
        raise CheckpointError(f"{path}: corrupt: {why}")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # truncated zip, random bytes, a pickle of arbitrary objects
        raise CheckpointError(
            f"{path}: unreadable ({type(e).__name__}: {str(e).splitlines()[0][:200]})"
        ) from None
    sd = ckpt.get("state_dict") if isinstance(ckpt, dict) else None
    if not isinstance(sd, dict):
        raise CheckpointError(f"{path}: not a Lightning checkpoint (no state_dict)")
    bad = [
        k
        for k, v in sd.items()
        if torch.is_tensor(v) and v.is_floating_point() and not torch.isfinite(v).all()
    ]
    if bad:
        raise CheckpointError(
            f"{path}: holds non-finite weights ({bad[0]}{' ...' if len(bad) > 1 else ''})"
        )
    return {
        "epoch": ckpt.get("epoch"),
        "global_step": ckpt.get("global_step"),
        "kind": "unverified (no digest)",
    }


def resumable_checkpoints(run_dir: Path) -> list[Path]:
    """``last.ckpt`` first, then the other checkpoints (best, older versions' names), newest first."""
    d = RunDir(run_dir).checkpoints
    others = (
        sorted(
            (p for p in d.glob("*.ckpt") if p.name != RunDir.LAST and not p.name.startswith(".")),
            key=lambda p: p.stat().st_mtime,
            reverse=True,
        )
        if d.is_dir()
        else []
    )
    last = d / RunDir.LAST
    return ([last] if last.is_file() else []) + others


def newest_valid_checkpoint(run_dir: Path) -> tuple[Path | None, list[str]]:
    """The valid checkpoint with the highest step (``last.ckpt`` on ties) and the problems of the others
    found on the way (one line each)."""
    problems, valid = [], []
    for order, p in enumerate(resumable_checkpoints(run_dir)):
        try:
            info = verify_checkpoint(p)
        except CheckpointError as e:
            problems.append(str(e))
            continue
        valid.append((int(info.get("global_step") or 0), -order, p))
    return (max(valid)[2] if valid else None), problems


def fsync_append(path: Path, line: str) -> None:
    """Append one whole line in one ``write`` and fsync it; on failure cut the file back to where it was."""
    data = line.encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        start = os.fstat(fd).st_size
        try:
            if os.write(fd, data) != len(data):
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            os.fsync(fd)
        except OSError as e:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, start)
            raise RunWriteError(path, e) from None
    finally:
        os.close(fd)
