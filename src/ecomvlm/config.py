"""Process-wide settings that every stage shares (cache location, offline mode)."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """Where converted weights and fetched images live: $ECOMVLM_CACHE or ~/.cache/ecomvlm."""
    root = os.environ.get("ECOMVLM_CACHE") or os.path.join(Path.home(), ".cache", "ecomvlm")
    path = Path(root).expanduser()
    path.mkdir(parents=True, exist_ok=True)
    return path
