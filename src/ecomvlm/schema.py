"""Listing schema plus streaming JSONL/CSV/Parquet readers that quarantine bad records.

Every reader is a generator: JSONL is read line by line, CSV row by row through the
``csv`` module and Parquet batch by batch, so a catalog never has to fit in memory.
A record that fails to parse or validate is appended (and flushed) to a quarantine
JSONL file with a machine-readable ``reason`` code, and the run goes on.

Reason codes: invalid_json, not_object, missing_field, wrong_type, duplicate_id,
too_many_images, too_long, bad_url, unknown_field, bad_encoding, invalid_value
(negative price, bad currency, blank aspect name...) and malformed_row (CSV shape).
"""

from __future__ import annotations

import csv
import difflib
import gzip
import json
import logging
import os
import re
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import IO, Annotated, Any
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from pydantic_core import PydanticCustomError

MAX_ID_CHARS = 128
MAX_TITLE_CHARS = 500
MAX_DESCRIPTION_CHARS = 100_000
MAX_CATEGORY_CHARS = 500
MAX_CONDITION_CHARS = 100
MAX_ASPECTS = 100
MAX_ASPECT_KEY_CHARS = 100
MAX_ASPECT_VALUE_CHARS = 500
MAX_ASPECT_LIST_VALUES = 100
MAX_IMAGES = 16
MAX_IMAGE_REF_CHARS = 2048
MAX_RAW_CHARS = 2_000  # raw record text kept in a quarantine entry
CSV_FIELD_LIMIT = 16 * 2**20  # over-cap cells must parse (then be rejected), not derail csv
IMAGE_SEPARATOR = "|"  # joins `images` in CSV cells (and Parquet string columns)

PathLike = str | os.PathLike[str]
_log = logging.getLogger(__name__)
_URL_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]+):")  # 2+ chars so "C:\x" stays a path
_UNDECODABLE = re.compile("[\udc80-\udcff]")  # bytes smuggled through surrogateescape
_FORMATS = {".jsonl": "jsonl", ".json": "jsonl", ".ndjson": "jsonl", ".csv": "csv",
            ".parquet": "parquet"}
_REASON_PRIORITY = ("unknown_field", "missing_field", "wrong_type", "too_many_images",
                    "too_long", "bad_url", "invalid_value")
_JSON_COLUMNS = ("aspects", "meta")  # JSON text in CSV/Parquet keeps str-vs-list values exact


def _fail(reason: str, message: str) -> PydanticCustomError:
    # Message goes in as context so braces in user data are never read as a template.
    return PydanticCustomError(reason, "{message}", {"message": message})


def _check_image_ref(ref: str) -> str:
    scheme = _URL_SCHEME.match(ref)
    if scheme and (scheme.group(1).lower() not in ("http", "https") or not urlsplit(ref).netloc):
        raise _fail("bad_url", f"image {ref[:200]!r} is not a local path or http(s) URL")
    return ref


def _text(max_chars: int, min_chars: int = 1) -> Any:
    return StringConstraints(strip_whitespace=True, min_length=min_chars, max_length=max_chars)


ImageRef = Annotated[str, _text(MAX_IMAGE_REF_CHARS), AfterValidator(_check_image_ref)]


class Listing(BaseModel):
    """One product listing. Unknown top-level fields are rejected so typos surface."""

    model_config = ConfigDict(extra="forbid", strict=True)

    id: Annotated[str, _text(MAX_ID_CHARS)]
    title: Annotated[str, _text(MAX_TITLE_CHARS)]
    description: Annotated[str, Field(max_length=MAX_DESCRIPTION_CHARS)] = ""  # HTML kept as-is
    category: Annotated[str, _text(MAX_CATEGORY_CHARS, 0)] = ""
    aspects: dict[str, str | list[str]] = Field(default_factory=dict)
    images: Annotated[list[ImageRef], Field(max_length=MAX_IMAGES)] = Field(default_factory=list)
    price: Annotated[float, Field(ge=0, allow_inf_nan=False)] | None = None
    currency: Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")] | None = None  # ISO 4217
    condition: Annotated[str, _text(MAX_CONDITION_CHARS)] | None = None
    meta: dict[str, Any] = Field(default_factory=dict)

    @field_validator("currency", "condition", mode="before")
    @classmethod
    def _blank_optional_is_missing(cls, value: Any, info: ValidationInfo) -> Any:
        # An empty CSV cell and "" must mean the same thing, or round trips drift.
        if not isinstance(value, str):
            return value
        value = value.strip()
        return (value.upper() if info.field_name == "currency" else value) or None

    @field_validator("aspects", mode="before")
    @classmethod
    def _normalise_aspects(cls, value: Any) -> dict[str, str | list[str]]:
        if not isinstance(value, dict):
            raise _fail("wrong_type", "aspects must be an object")
        if len(value) > MAX_ASPECTS:
            raise _fail("too_long", f"{len(value)} aspects, at most {MAX_ASPECTS} allowed")
        aspects: dict[str, str | list[str]] = {}
        for key, raw in value.items():
            name = key.strip() if isinstance(key, str) else ""
            if not name or name in aspects:
                raise _fail("invalid_value", f"aspect name {key!r} is blank, repeated or not text")
            if len(name) > MAX_ASPECT_KEY_CHARS:
                raise _fail("too_long", f"aspect name over {MAX_ASPECT_KEY_CHARS} chars")
            if isinstance(raw, list):
                if len(raw) > MAX_ASPECT_LIST_VALUES:
                    raise _fail("too_long", f"aspect {name!r} has too many values")
                if values := [v for v in (_aspect_value(name, item) for item in raw) if v]:
                    aspects[name] = values
            elif text := _aspect_value(name, raw):
                aspects[name] = text  # blank values carry no information and are dropped
        return aspects


def _aspect_value(name: str, value: Any) -> str:
    if isinstance(value, (int, float, Decimal)) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        raise _fail("wrong_type", f"aspect {name!r} value must be a string or number")
    if len(value := value.strip()) > MAX_ASPECT_VALUE_CHARS:
        raise _fail("too_long", f"aspect {name!r} value over {MAX_ASPECT_VALUE_CHARS} chars")
    return value


def _reason_code(error_type: str, loc: tuple[Any, ...]) -> str:
    if error_type == "missing" or (error_type == "string_too_short" and loc[0] in ("id", "title")):
        return "missing_field"
    if error_type in ("extra_forbidden", "bad_url"):
        return "unknown_field" if error_type == "extra_forbidden" else "bad_url"
    if error_type in ("too_long", "string_too_long"):
        return "too_many_images" if loc == ("images",) else "too_long"
    return "wrong_type" if error_type.endswith("_type") else "invalid_value"


def _explain(exc: ValidationError) -> tuple[str, str]:
    """Pick the most telling reason code and describe the problems briefly."""
    reasons, parts = [], []
    for error in exc.errors(include_url=False, include_input=False):
        field = ".".join(str(p) for p in error["loc"]) or "record"
        reasons.append(_reason_code(error["type"], error["loc"]))
        if reasons[-1] == "unknown_field":
            guess = difflib.get_close_matches(field, list(Listing.model_fields), n=1)
            hint = f"; did you mean {guess[0]!r}?" if guess else ""
            parts.append(f"unknown field {field!r}{hint}")
        else:
            parts.append(f"{field}: {error['msg']}")
    return min(reasons, key=_REASON_PRIORITY.index), "; ".join(parts[:5])


@dataclass
class _Candidate:
    """A record as found in the source, before validation."""

    line: int  # 1-based physical start line (JSONL, CSV) or row number (Parquet)
    fields: dict[str, Any] | None = None
    raw: str | None = None  # None for Parquet: rebuilt from `fields` only when quarantined
    reason: str | None = None  # set when the record could not even be parsed
    detail: str = ""


def _split_format(path: Path, format: str | None) -> tuple[str, bool]:
    name = path.name.lower()
    compressed, stem = name.endswith(".gz"), name.removesuffix(".gz")
    fmt = format or next((f for suffix, f in _FORMATS.items() if stem.endswith(suffix)), None)
    if fmt not in ("jsonl", "csv", "parquet") or (fmt == "parquet" and compressed):
        raise ValueError(f"cannot read listings format of {path}; pass format= jsonl/csv/parquet")
    return fmt, compressed


def _jsonl_candidates(path: Path, compressed: bool) -> Iterator[_Candidate]:
    with (gzip.open(path, "rb") if compressed else open(path, "rb")) as handle:
        for line, data in enumerate(handle, start=1):
            if line == 1:
                data = data.removeprefix(b"\xef\xbb\xbf")  # UTF-8 byte order mark
            if data.strip():  # blank lines are not records
                yield _json_candidate(line, data)


def _json_candidate(line: int, data: bytes) -> _Candidate:
    try:
        text = data.decode("utf-8").rstrip("\r\n")
    except UnicodeDecodeError as exc:
        raw = data.decode("utf-8", "replace")
        return _Candidate(line, None, raw, "bad_encoding", f"not valid UTF-8 (byte {exc.start})")
    try:
        record = json.loads(text)
    except json.JSONDecodeError as exc:
        return _Candidate(line, None, text, "invalid_json", f"bad JSON: {exc}")
    if not isinstance(record, dict):
        return _Candidate(line, None, text, "not_object", f"{type(record).__name__}, not object")
    return _Candidate(line, record, text)


def _csv_candidates(path: Path, compressed: bool) -> Iterator[_Candidate]:
    # surrogateescape lets one bad byte spoil only its own record instead of the whole read.
    csv.field_size_limit(max(csv.field_size_limit(), CSV_FIELD_LIMIT))  # process-wide, only raised
    kwargs: dict[str, Any] = {"encoding": "utf-8-sig", "errors": "surrogateescape", "newline": ""}
    with (gzip.open(path, "rt", **kwargs) if compressed else open(path, **kwargs)) as handle:
        consumed: list[str] = []  # physical lines of the row being parsed, for `raw`

        def tapped_lines() -> Iterator[str]:
            for physical_line in handle:
                consumed.append(physical_line)
                yield physical_line

        rows = csv.reader(tapped_lines(), strict=True)  # bad quoting is an error, not a guess
        columns = [name.strip() for name in next(rows, [])]
        if len(set(columns)) != len(columns):
            raise ValueError(f"{path}: repeated column names in CSV header {columns}")
        while True:
            start, consumed[:] = rows.line_num + 1, []
            try:
                cells = next(rows)
            except StopIteration:
                return
            except csv.Error as exc:
                yield _Candidate(start, None, "".join(consumed), "malformed_row", str(exc))
                continue
            raw = "".join(consumed)
            if not cells:
                continue  # blank line
            if _UNDECODABLE.search(raw):
                yield _Candidate(start, None, raw, "bad_encoding", "row is not valid UTF-8")
            elif len(cells) != len(columns):
                shape = f"{len(cells)} cells but {len(columns)} columns"
                yield _Candidate(start, None, raw, "malformed_row", shape)
            else:
                present = {c: v for c, v in zip(columns, cells, strict=True) if v != ""}
                yield _flat_candidate(start, present, raw)  # an empty cell means missing


def _flat_candidate(line: int, fields: dict[str, Any], raw: str | None = None) -> _Candidate:
    """Decode flat-table cells: `|`-joined images, JSON (or struct/map) aspects and meta."""
    if isinstance(fields.get("images"), str):
        refs = fields["images"].split(IMAGE_SEPARATOR)
        fields["images"] = [ref.strip() for ref in refs if ref.strip()]
    for column in _JSON_COLUMNS:
        value = fields.get(column)
        if isinstance(value, str):
            try:
                fields[column] = json.loads(value) if value.strip() else {}
            except json.JSONDecodeError as exc:
                return _Candidate(line, fields, raw, "invalid_json", f"{column} is not JSON: {exc}")
        elif isinstance(value, list) and all(isinstance(pair, tuple) for pair in value):
            fields[column] = dict(value)  # Parquet map column
        elif isinstance(value, dict):
            fields[column] = {k: v for k, v in value.items() if v is not None}  # struct column
    price = fields.get("price")
    if isinstance(price, (str, Decimal)):
        with suppress(ValueError):  # unparseable text stays text: validation says wrong_type
            fields["price"] = float(price)
    return _Candidate(line, fields, raw)


def _parquet_candidates(path: Path, batch_size: int) -> Iterator[_Candidate]:
    import pyarrow.parquet as pq

    row_number = 0
    with pq.ParquetFile(path) as parquet:
        for batch in parquet.iter_batches(batch_size=batch_size):
            for row in batch.to_pylist():
                row_number += 1
                yield _flat_candidate(row_number, {k: v for k, v in row.items() if v is not None})


class _Quarantine:
    """Appends one JSON line per rejected record, flushed at once so a crash loses nothing."""

    def __init__(self, path: PathLike | None, source: str) -> None:
        self.path, self.source, self._handle = path, source, None

    def write(self, candidate: _Candidate, reason: str, detail: str) -> None:
        found = (candidate.fields or {}).get("id")
        readable = isinstance(found, (str, int)) and not isinstance(found, bool)
        record_id = str(found) if readable else None
        named = f"{self.source}:{candidate.line}" + (f" (id {record_id!r})" if record_id else "")
        if self.path is None:
            _log.warning("skipped listing %s [%s]: %s", named, reason, detail)
            return
        if self._handle is None:
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            # Held open across writes on purpose; close() runs in ListingReader's finally.
            self._handle = open(  # noqa: SIM115
                self.path, "a", encoding="utf-8", errors="backslashreplace")
        raw = candidate.raw or json.dumps(candidate.fields, default=str, ensure_ascii=False)
        entry = {"source": self.source, "line": candidate.line, "id": record_id, "reason": reason,
                 "detail": f"{named}: {detail}", "raw": raw[:MAX_RAW_CHARS]}
        self._handle.write(json.dumps(entry, ensure_ascii=False) + "\n")
        self._handle.flush()

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()


class ListingReader:
    """Iterate valid listings from one file; counts reconcile: seen == read + quarantined.

    Duplicate ids are caught with an in-memory map of accepted id -> first line. Ids are
    capped at MAX_ID_CHARS, so this costs roughly 100-200 bytes per listing (fine for
    tens of millions) and is the only state that grows with the file.
    """

    def __init__(self, path: PathLike, quarantine_path: PathLike | None = None, *,
                 format: str | None = None, batch_size: int = 1024) -> None:
        self.path = Path(path)
        self.format, self._compressed = _split_format(self.path, format)
        if quarantine_path is not None and Path(quarantine_path).resolve() == self.path.resolve():
            raise ValueError("quarantine_path must differ from the file being read")
        self.quarantine_path, self.batch_size = quarantine_path, batch_size
        self.seen = self.read = self.quarantined = 0
        self.reasons: Counter[str] = Counter()  # quarantined records per reason code

    def _candidates(self) -> Iterator[_Candidate]:
        if self.format == "parquet":
            return _parquet_candidates(self.path, self.batch_size)
        text_reader = _jsonl_candidates if self.format == "jsonl" else _csv_candidates
        return text_reader(self.path, self._compressed)

    def __iter__(self) -> Iterator[Listing]:
        self.seen = self.read = self.quarantined = 0
        self.reasons = Counter()
        first_line_of_id: dict[str, int] = {}
        quarantine = _Quarantine(self.quarantine_path, str(self.path))
        try:
            for candidate in self._candidates():
                self.seen += 1
                reason, detail = candidate.reason, candidate.detail
                if reason is None:
                    try:
                        listing = Listing.model_validate(candidate.fields)
                    except ValidationError as exc:
                        reason, detail = _explain(exc)
                    else:
                        first_line = first_line_of_id.setdefault(listing.id, candidate.line)
                        if first_line == candidate.line:
                            self.read += 1
                            yield listing
                            continue
                        reason = "duplicate_id"
                        detail = f"duplicate id {listing.id!r}, first seen at line {first_line}"
                self.quarantined += 1
                self.reasons[reason] += 1
                quarantine.write(candidate, reason, detail)
        finally:
            quarantine.close()


def read_listings(path: PathLike, quarantine_path: PathLike | None = None, *,
                  format: str | None = None) -> Iterator[Listing]:
    """Stream valid listings from .jsonl/.json/.ndjson/.csv (maybe .gz) or .parquet files."""
    return iter(ListingReader(path, quarantine_path, format=format))


def _flat_record(listing: Listing) -> dict[str, Any]:
    """Column values for CSV/Parquet; field order gives every writer a stable key order."""
    record = listing.model_dump(mode="json")
    for column in _JSON_COLUMNS:
        record[column] = json.dumps(record[column], ensure_ascii=False) if record[column] else None
    return record


@contextmanager
def _atomic(path: Path) -> Iterator[Path]:
    """Write to a sibling temp file and rename, so readers never see half a catalog."""
    tmp = path.with_name(path.name + ".tmp")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@contextmanager
def _text_writer(path: Path, newline: str | None = None) -> Iterator[IO[str]]:
    opener: Any = gzip.open if path.name.endswith(".gz") else open
    with _atomic(path) as tmp, opener(tmp, "wt", encoding="utf-8", newline=newline) as text:
        yield text


def write_listings_jsonl(listings: Iterable[Listing], path: PathLike) -> int:
    """Write one JSON object per line (gzip if the name ends in .gz); returns the count."""
    count = 0
    with _text_writer(Path(path)) as out:
        for listing in listings:
            count += 1
            record = {k: v for k, v in listing.model_dump(mode="json").items() if v is not None}
            out.write(json.dumps(record, ensure_ascii=False) + "\n")
    return count


def write_listings(listings: Iterable[Listing], path: PathLike, *, format: str | None = None,
                   row_group_size: int = 1024) -> int:
    """Write listings as JSONL, CSV or Parquet (chosen by suffix); returns the count."""
    path, count = Path(path), 0
    fmt, _ = _split_format(path, format)
    if fmt == "jsonl":
        return write_listings_jsonl(listings, path)
    if fmt == "csv":
        with _text_writer(path, newline="") as out:
            writer = csv.writer(out)
            writer.writerow(Listing.model_fields)
            for listing in listings:
                count += 1
                if any(IMAGE_SEPARATOR in ref for ref in listing.images):
                    raise ValueError(f"listing {listing.id!r}: an image ref contains '|'")
                # csv writes floats with repr(), the shortest text that parses back exactly.
                record = _flat_record(listing) | {"images": IMAGE_SEPARATOR.join(listing.images)}
                writer.writerow("" if v is None else v for v in record.values())
        return count
    import pyarrow as pa
    import pyarrow.parquet as pq

    types = {"images": pa.list_(pa.string()), "price": pa.float64()}
    schema = pa.schema([(name, types.get(name, pa.string())) for name in Listing.model_fields])
    chunk: list[dict[str, Any]] = []
    with _atomic(path) as tmp, pq.ParquetWriter(tmp, schema) as writer:
        for listing in listings:
            count += 1
            chunk.append(_flat_record(listing))
            if len(chunk) == row_group_size:
                writer.write_table(pa.Table.from_pylist(chunk, schema=schema))
                chunk = []
        if chunk or count == 0:
            writer.write_table(pa.Table.from_pylist(chunk, schema=schema))
    return count
