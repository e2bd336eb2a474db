"""Settings of one curation run, and the fingerprint that guards resuming it."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

# Bump when a change to the pipeline changes its output for the same settings, so an old
# half-finished run is not resumed with new code.
PIPELINE_VERSION = 1


class CurateConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    listings: Path
    out: Path
    engine: str = "local"  # local | ray
    captioner: str = "perception"
    verifier: str = "perception"
    limit: int | None = Field(default=None, ge=1)
    seed: int = 0
    workers: int | None = Field(default=None, ge=1)
    shard_size: int = Field(default=32, ge=1)
    allow_url_fetch: bool = False
    replay: Path | None = None  # general-purpose samples mixed into stage 3
    replay_fraction: float = Field(default=0.1, ge=0.0, le=1.0)
    ground_truth: Path | None = None  # only the quality report reads it

    def fingerprint(self) -> str:
        """What decides the output. Engine, workers and the answer key do not: a run may resume
        on another engine and must give the same samples."""
        decisive = self.model_dump(mode="json", exclude={"out", "engine", "workers",
                                                         "ground_truth"})
        decisive["listings"] = str(Path(self.listings).resolve())
        decisive["pipeline_version"] = PIPELINE_VERSION
        blob = json.dumps(decisive, sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]
