"""Atomic file writes: a kill mid-write never leaves a half-written file behind."""

from __future__ import annotations

import contextlib
import csv
import errno
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO


@contextlib.contextmanager
def atomic_path(path: str | Path, *, keep_suffix: bool = False) -> Iterator[Path]:
    """A temporary path beside ``path`` for a writer that wants a file name (OpenCV's
    VideoWriter, Keras' save); on success it is renamed over ``path``.

    The temporary name is hidden and ends in ``.partial``, so a kill mid-write leaves nothing a
    ``*.csv``-style glob would pick up. Writers that pick their format from the suffix pass
    ``keep_suffix=True`` (the name then ends in ``.partial<suffix>``).

    The rename is atomic on POSIX, so readers see either the old file or the whole new one. On an
    exception the temporary file is removed and ``path`` is left as it was. The file gets the
    permissions an ordinary new file would (mkstemp's are owner-only).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = ".partial" + (path.suffix if keep_suffix else "")
    fd, name = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=suffix, dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        umask = os.umask(0o022)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def check_target(target: str | Path, overwrite: bool,
                 error: Callable[[str], Exception] = FileExistsError) -> None:
    """Raise ``error`` if ``target`` is a file, or a folder that holds something, and not
    ``overwrite``."""
    target = Path(target)
    if target.is_file() or target.is_symlink():
        if not overwrite:
            raise error(f"{str(target)!r} exists; pass overwrite=True to replace it")
    elif target.is_dir() and any(target.iterdir()) and not overwrite:
        raise error(
            f"{str(target)!r} exists and is not empty; pass overwrite=True (--overwrite) to "
            "replace it, or choose another version or folder"
        )


@contextlib.contextmanager
def atomic_folder(target: str | Path, overwrite: bool = False,
                  error: Callable[[str], Exception] = FileExistsError) -> Iterator[Path]:
    """A temporary folder beside ``target`` to build in; on success it replaces ``target``.

    A ``target`` that holds something raises ``error`` (see :func:`check_target`) unless
    ``overwrite``, before and again after the build (someone may have written it meanwhile).
    The temporary name is hidden and holds ``.partial`` (TF Serving loads only all-digit folder
    names, so it never sees it). An old ``target`` is renamed away first and deleted after the
    new one is in place. On an exception the temporary folder is removed.
    """
    target = Path(target)
    check_target(target, overwrite, error)
    target.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{target.name}.partial-", dir=target.parent))
    try:
        yield work
        umask = os.umask(0o022)
        os.umask(umask)
        os.chmod(work, 0o777 & ~umask)  # mkdtemp's folder is owner-only; a server may not be
        check_target(target, overwrite, error)
        old = None
        if target.is_dir() or target.is_file() or target.is_symlink():
            old = target.with_name(f"{work.name}.old")
            os.replace(target, old)
        os.replace(work, target)
        if old is not None:
            if old.is_dir() and not old.is_symlink():
                shutil.rmtree(old)
            else:
                old.unlink()
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise


def remove_partials(folder: str | Path, *, folders: bool = False) -> int:
    """Delete the temporary files that killed :func:`atomic_path` writes left in ``folder``
    and, with ``folders``, the temporary folders of killed :func:`atomic_folder` builds
    (``.<name>.partial-*``, and the ``.old`` copy of a replaced target that a kill caught
    between its two renames); return how many there were. A missing ``folder`` has none. Call it
    only when no writer is running there: a build in progress looks the same as a dead one."""
    folder = Path(folder)
    if not folder.is_dir():
        return 0
    stale = [p for p in folder.glob(".*.partial*") if not p.is_symlink()
             and (p.is_file() or (folders and p.is_dir() and ".partial-" in p.name))]
    for path in stale:
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink()
    return len(stale)


@contextlib.contextmanager
def atomic_write(path: str | Path, mode: str = "w", **open_kwargs) -> Iterator[IO]:
    """Open a temporary file beside ``path``; on success rename it over ``path`` (see
    :func:`atomic_path`)."""
    with atomic_path(path) as tmp, open(tmp, mode, **open_kwargs) as handle:
        yield handle
        handle.flush()
        os.fsync(handle.fileno())


def write_csv_atomic(
    path: str | Path, fieldnames: Sequence[str], rows: Iterable[Mapping[str, object]]
) -> None:
    """Write dict rows as CSV with a header, atomically."""
    with atomic_write(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(fieldnames))
        writer.writeheader()
        writer.writerows(rows)


def write_json_atomic(path: str | Path, data: object) -> None:
    """Write ``data`` as indented JSON with a final newline, atomically."""
    with atomic_write(path, "w", encoding="utf-8") as handle:
        json.dump(data, handle, indent=2, sort_keys=True)
        handle.write("\n")


def read_csv(path: str | Path) -> list[dict[str, str]]:
    """Read a CSV with a header into dict rows."""
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def missing_reason(path: str | Path) -> str:
    """Why ``path`` cannot be read as a file: "no such file", "broken symlink to ...", "symlink
    loop", ... (``Path.exists()`` reads a loop and a dangling link alike as missing)."""
    path = Path(path)
    try:
        path.stat()
    except OSError as error:
        if error.errno == errno.ELOOP:
            return "symlink loop (the link resolves to itself)"
        if path.is_symlink():
            return f"broken symlink to {os.readlink(path)!r}"
        if error.errno == errno.ENOENT:
            return "no such file"
        return error.strerror or str(error)
    return "no such file"
