"""An on-disk cache of ImagePerception records, one small JSON file per (backend, image sha256).

Re-runs and duplicate photos (re-posts share bytes) cost one file read instead of OCR and a
CNN pass. Files are written to a temporary name in the same folder and renamed into place, so
a crash or two pool workers writing the same entry never leave a torn file; an unreadable or
stale entry counts as a miss and is simply recomputed.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from pathlib import Path

from pydantic import ValidationError

from .records import ImagePerception

CACHE_VERSION = 1  # bump when the meaning of a cached field changes
_SAFE = re.compile(r"[^A-Za-z0-9_.-]+")
_SHA = re.compile(r"^[0-9a-f]{64}$")


class PerceptionCache:
    """``get(sha)`` / ``put(record)`` under ``root/<namespace>/<sha[:2]>/<sha>.json``.

    ``namespace`` separates backends and their settings (a VLM endpoint's captions must not
    be served for the local perceiver). ``root=None`` disables the cache (every get misses).
    """

    def __init__(self, root: str | Path | None, namespace: str = "perception"):
        self.root = Path(root) if root is not None else None
        self.namespace = f"{_SAFE.sub('_', namespace)[:80]}-v{CACHE_VERSION}"
        self.hits = 0
        self.misses = 0

    def _path(self, sha: str) -> Path | None:
        if self.root is None or not _SHA.match(sha):
            return None
        return self.root / self.namespace / sha[:2] / f"{sha}.json"

    def get(self, sha: str) -> ImagePerception | None:
        path = self._path(sha)
        record = None
        if path is not None and path.is_file():
            try:
                record = ImagePerception.model_validate_json(path.read_bytes())
            except (OSError, ValueError, ValidationError):
                record = None  # torn or stale: recompute and overwrite
        if record is None or record.sha256 != sha:
            self.misses += 1
            return None
        self.hits += 1
        return record

    def put(self, record: ImagePerception) -> None:
        path = self._path(record.sha256)
        if path is None:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".json", dir=path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(json.dumps(record.model_dump(mode="json"), ensure_ascii=False))
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
