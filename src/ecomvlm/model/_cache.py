"""Publish converted weights atomically so a crash or a concurrent run never leaves half a cache.

A cache entry is a directory under ``cache_dir()/packaged/<name>``. It is written into a hidden
temporary sibling, the completeness marker is written last, and only then is the directory
renamed into place; readers trust an entry only when the marker is present.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ..config import cache_dir

MARKER = "COMPLETE.json"


def packaged_dir(name: str) -> Path:
    """Where the converted form of a packaged backbone lives (not necessarily complete yet)."""
    return cache_dir() / "packaged" / name


def is_complete(path: Path) -> bool:
    return (path / MARKER).is_file()


@contextmanager
def publish_dir(final: Path, info: dict[str, Any] | None = None) -> Iterator[Path]:
    """Yield a scratch directory; on success mark it complete and rename it to ``final``.

    If another process published ``final`` first, its copy wins and ours is discarded, so
    concurrent conversions are wasteful but never corrupt.
    """
    final.parent.mkdir(parents=True, exist_ok=True)
    scratch = final.parent / f".{final.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    scratch.mkdir()
    try:
        yield scratch
        (scratch / MARKER).write_text(json.dumps(info or {}, indent=1))
        try:
            os.rename(scratch, final)
        except OSError:
            if not is_complete(final):
                # a leftover without marker (e.g. created by hand): ours is the good copy
                shutil.rmtree(final)
                os.rename(scratch, final)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
