"""Atomic file writes, and torch files guarded by a SHA-256 checksum.

Every output tgkit writes (run directories, predictions, tables, figures) goes through
:func:`atomic_write`: a temporary sibling file that is renamed over the target with
``os.replace`` only once complete, so a crash or Ctrl-C never leaves a half-written file
where a reader would take it for a finished one.

Torch files (checkpoints, ``model.pt``) get a sidecar ``<name>.sha256`` holding the digest and
size of the file; :func:`load_torch` checks it before unpickling, so flipped bytes or a
truncated copy are one clear error instead of garbage weights or a traceback.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from tgkit.errors import TgkitError

CHECKSUM_SUFFIX = ".sha256"


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "w", **kwargs: Any) -> Iterator[IO]:
    """Open a temporary file next to ``path``; on success fsync it and rename it to ``path``.

    Args:
        path: the final file.
        mode: ``"w"`` (text, UTF-8 by default) or ``"wb"``.
        **kwargs: passed to :func:`open` (e.g. ``newline=""`` for csv).

    Example::

        with atomic_write(out / "results.json") as f:
            json.dump(doc, f)
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if "b" not in mode:
        kwargs.setdefault("encoding", "utf-8")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode, **kwargs) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_path(path: str | os.PathLike) -> contextlib.AbstractContextManager[Path]:
    """Like :func:`atomic_write` for writers that want a file name (``np.savez``,
    ``savefig``, h5py): yields a temporary path with the same suffix, renamed on success."""
    return _atomic_path(Path(path))


@contextlib.contextmanager
def _atomic_path(path: Path) -> Iterator[Path]:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def checksum_path(path: str | os.PathLike) -> Path:
    path = Path(path)
    return path.with_name(path.name + CHECKSUM_SUFFIX)


def save_torch(obj: Any, path: str | os.PathLike) -> Path:
    """``torch.save`` atomically, plus the ``<name>.sha256`` sidecar of the bytes written."""
    import torch

    path = Path(path)
    buf = io.BytesIO()
    torch.save(obj, buf)
    payload = buf.getbuffer()
    digest = hashlib.sha256(payload).hexdigest()
    with atomic_write(path, "wb") as f:
        f.write(payload)
    with atomic_write(checksum_path(path)) as f:
        f.write(f"{digest}  {len(payload)}  {path.name}\n")
    return path


def verify_checksum(path: str | os.PathLike, what: str = "file") -> bytes:
    """The bytes of ``path`` after checking them against its sidecar (when one exists)."""
    path = Path(path)
    if not path.is_file():
        raise TgkitError(f"{path}: {what} not found")
    data = path.read_bytes()
    side = checksum_path(path)
    if side.is_file():
        try:
            digest, size = side.read_text(encoding="utf-8").split()[:2]
            size_ok = int(size) == len(data)
        except (ValueError, UnicodeDecodeError):
            raise TgkitError(f"{side}: unreadable checksum file") from None
        if not size_ok:
            raise TgkitError(f"{path}: {what} is truncated or was changed ({len(data)} bytes, "
                             f"{side.name} records {size})")
        if hashlib.sha256(data).hexdigest() != digest:
            raise TgkitError(f"{path}: {what} is corrupt (SHA-256 differs from {side.name})")
    return data


def load_torch(path: str | os.PathLike, map_location: Any = "cpu", what: str = "checkpoint"
               ) -> Any:
    """``torch.load(weights_only=True)`` after :func:`verify_checksum`; errors are one line."""
    import torch

    data = verify_checksum(path, what)
    try:
        return torch.load(io.BytesIO(data), map_location=map_location, weights_only=True)
    except Exception as exc:  # torch raises several types for corrupt or foreign files
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise TgkitError(f"{path}: cannot read {what} ({type(exc).__name__}: {msg})") from None


def write_text(path: str | os.PathLike, text: str) -> Path:
    """``Path.write_text`` through :func:`atomic_write`."""
    with atomic_write(path) as f:
        f.write(text)
    return Path(path)


@contextlib.contextmanager
def damaged_file_errors(path: str | os.PathLike, what: str = "checkpoint") -> Iterator[None]:
    """Turn what rebuilding a model from a loaded file raises into one line naming the file:
    a config problem as it is, a missing key or a mismatched tensor as a damaged ``what``."""
    try:
        yield
    except TgkitError as exc:
        raise TgkitError(f"{path}: {exc}") from None
    except KeyError as exc:
        raise TgkitError(f"{path}: damaged {what} (no {exc.args[0]!r})") from None
    except (AttributeError, TypeError, ValueError, RuntimeError) as exc:
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise TgkitError(f"{path}: damaged {what} ({msg})") from None
