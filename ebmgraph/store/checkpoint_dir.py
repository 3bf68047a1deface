"""A checkpoint is one directory, ``checkpoints/step_NNNNNNNN/``, complete or absent: its files are
written into a temporary directory with ``manifest.json`` last (the step, each file's size and
SHA-256), flushed to disk, and the directory is renamed into place in one step. A checkpoint is
complete when its manifest reads and every file matches it; loading verifies that, names the
damaged file and falls back to the previous complete checkpoint. The newest ``keep`` complete
checkpoints are kept, so the previous one survives until the new one is in place, and so is the
checkpoint ``best.json`` names (the best evaluation so far, ``train.keep_best``)."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import attrs

from ebmgraph.errors import DataError
from ebmgraph.store.atomic import atomic_path

CHECKPOINTS = "checkpoints"
MANIFEST = "manifest.json"
BEST = "best.json"
KEEP = 2
_NAME = re.compile(r"step_(\d{8,})")


@attrs.frozen
class StoredCheckpoint:
    """A complete checkpoint directory and the step it holds."""

    path: Path
    step: int

    def file(self, name: str) -> Path:
        return self.path / name


class DamagedCheckpoint(DataError):
    """A checkpoint directory whose manifest or files do not verify; the message names the file."""


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_file(path: Path, data: bytes) -> None:
    """``data`` into a new file, flushed to disk before it counts as written."""
    with path.open("wb") as file:
        file.write(data)
        file.flush()
        os.fsync(file.fileno())


def _sync_directory(path: Path) -> None:
    handle = os.open(path, os.O_RDONLY)
    try:
        os.fsync(handle)
    finally:
        os.close(handle)


def _directory_name(step: int) -> str:
    return f"step_{step:08d}"


def _step_directories(run_dir: Path) -> list[tuple[int, Path]]:
    """(step, path) of every ``step_*`` directory, newest first, complete or not."""
    root = run_dir / CHECKPOINTS
    if not root.is_dir():
        return []
    found = [(int(match.group(1)), path) for path in root.iterdir() if (match := _NAME.fullmatch(path.name))]
    return sorted(found, reverse=True)


def verify(path: Path, digests: bool = True) -> StoredCheckpoint:
    """The checkpoint in ``path`` if its manifest reads and each file has the size and (with
    ``digests``) the SHA-256 it lists; otherwise DamagedCheckpoint naming the file."""
    manifest = path / MANIFEST
    try:
        record = json.loads(manifest.read_text())
        step, files = int(record["step"]), dict(record["files"])
        expected = {name: (int(entry["bytes"]), str(entry["sha256"])) for name, entry in files.items()}
    except FileNotFoundError:
        raise DamagedCheckpoint(f"checkpoint manifest '{manifest}' is missing: the checkpoint is incomplete") \
            from None
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
        raise DamagedCheckpoint(f"checkpoint manifest '{manifest}' is damaged ({type(error).__name__}: {error})") \
            from None
    if path.name != _directory_name(step):
        raise DamagedCheckpoint(f"checkpoint manifest '{manifest}' is damaged: it says step {step}, its directory "
                                f"is '{path.name}'")
    for name, (size, digest) in expected.items():
        file = path / name
        if Path(name).name != name or not file.is_file():
            raise DamagedCheckpoint(f"checkpoint file '{file}' is missing")
        if file.stat().st_size != size:
            raise DamagedCheckpoint(f"checkpoint file '{file}' is damaged: {file.stat().st_size} bytes, its "
                                    f"manifest says {size}")
        if digests and _sha256(file) != digest:
            raise DamagedCheckpoint(f"checkpoint file '{file}' is damaged: its SHA-256 differs from the manifest's")
    return StoredCheckpoint(path, step)


def checkpoints(run_dir: str | Path, digests: bool = True) -> Iterator[StoredCheckpoint | DamagedCheckpoint]:
    """Each ``step_*`` directory of the run, newest first: the verified checkpoint, or the reason it
    is not one."""
    for _, path in _step_directories(Path(run_dir)):
        try:
            yield verify(path, digests)
        except DamagedCheckpoint as error:
            yield error


def checkpoint_of_step(run_dir: str | Path, step: int) -> StoredCheckpoint:
    """The complete checkpoint of ``step``; DataError naming the steps kept when there is none."""
    found = [(found_step, path) for found_step, path in _step_directories(Path(run_dir)) if found_step == step]
    if not found:
        kept = ", ".join(str(found_step) for found_step, _ in reversed(_step_directories(Path(run_dir)))) or "none"
        raise DataError(f"run directory '{run_dir}' holds no checkpoint of step {step} (steps kept: {kept})")
    return verify(found[0][1])


def has_checkpoint_of_step(run_dir: str | Path, step: int) -> bool:
    """Whether the run holds a checkpoint directory of ``step`` (complete or not)."""
    return (Path(run_dir) / CHECKPOINTS / _directory_name(step)).is_dir()


def has_checkpoint(run_dir: str | Path) -> bool:
    """Whether the run holds any checkpoint directory (complete or not): a run to resume, not to start."""
    return bool(_step_directories(Path(run_dir)))


def _disk_error(error: OSError, file: Path, step: int) -> DataError:
    full = error.errno == errno.ENOSPC or "No space left" in str(error)
    reason = "the disk is full" if full else f"{type(error).__name__}: {error}"
    return DataError(f"cannot write checkpoint file '{file}' ({reason}): the checkpoint of step {step} was not "
                     "written; the previous checkpoint is kept")


def write_checkpoint(run_dir: str | Path, step: int, files: dict[str, Callable[[], bytes]],
                     keep: int = KEEP) -> StoredCheckpoint:
    """Write ``files`` (name → its bytes) as the checkpoint of ``step``, then remove all but the
    newest ``keep`` complete checkpoints and any leftovers of interrupted writes."""
    root = Path(run_dir) / CHECKPOINTS
    root.mkdir(parents=True, exist_ok=True)
    final = root / _directory_name(step)
    temporary = Path(tempfile.mkdtemp(dir=root, prefix=f".{final.name}.", suffix=".tmp"))
    file = temporary
    try:
        entries = {}
        for name, produce in files.items():
            file = temporary / name
            data = produce()
            write_file(file, data)
            entries[name] = {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
        file = temporary / MANIFEST
        write_file(file, (json.dumps({"step": step, "files": entries}, indent=2) + "\n").encode())
        _sync_directory(temporary)
        file = final
        if final.exists():  # an incomplete or damaged directory of this step, left by an earlier crash
            shutil.rmtree(final)
        os.rename(temporary, final)
        _sync_directory(root)
    except OSError as error:
        raise _disk_error(error, file, step) from None
    finally:
        shutil.rmtree(temporary, ignore_errors=True)
    prune(run_dir, step, keep)
    return StoredCheckpoint(final, step)


def prune(run_dir: str | Path, newest: int, keep: int = KEEP) -> None:
    """Remove what interrupted writes left, and the complete checkpoints of steps up to ``newest``
    (the one in use) but the latest ``keep`` and the best (``best.json``). Completeness is the
    manifest and the file sizes: the files' digests are checked when a checkpoint is loaded, not
    each time one is written."""
    root = Path(run_dir) / CHECKPOINTS
    best = read_best(run_dir)
    complete = [found for found in checkpoints(run_dir, digests=False) if isinstance(found, StoredCheckpoint) and found.step <= newest]
    for old in complete[keep:]:
        if best is None or old.step != best["step"]:
            shutil.rmtree(old.path, ignore_errors=True)
    for leftover in root.glob(".step_*.tmp"):
        shutil.rmtree(leftover, ignore_errors=True)


def read_best(run_dir: str | Path) -> dict | None:
    """``best.json``: the metric, its mode, the best value and the step of its checkpoint (None when
    the run keeps no best checkpoint, or the file does not read)."""
    try:
        record = json.loads((Path(run_dir) / CHECKPOINTS / BEST).read_text())
        return {"metric": str(record["metric"]), "mode": str(record["mode"]), "value": float(record["value"]),
                "step": int(record["step"])}
    except (OSError, ValueError, KeyError, TypeError):
        return None


def write_best(run_dir: str | Path, record: dict) -> None:
    """Name the checkpoint of ``record["step"]`` the best (written whole or not at all)."""
    with atomic_path(Path(run_dir) / CHECKPOINTS / BEST) as temporary:
        temporary.write_text(json.dumps(record, indent=2) + "\n")


def discard_after(run_dir: str | Path, step: int) -> list[int]:
    """Remove the checkpoints of steps after ``step`` (a run resumed from an earlier checkpoint
    starts a new history), and ``best.json`` if it names one of them; return their steps."""
    removed = [found_step for found_step, path in _step_directories(Path(run_dir)) if found_step > step]
    best = read_best(run_dir)
    if best is not None and best["step"] > step:
        (Path(run_dir) / CHECKPOINTS / BEST).unlink()
    for found_step in removed:
        shutil.rmtree(Path(run_dir) / CHECKPOINTS / _directory_name(found_step), ignore_errors=True)
    return removed
