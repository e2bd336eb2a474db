"""JSON-schema constrained decoding through ``outlines-core``, fed to ``generate_batch``'s
``allowed_tokens`` hook.

outlines-core (the engine under outlines) compiles a schema to a regular expression and the
regular expression to an index over the tokenizer's vocabulary: for every automaton state,
the tokens that keep the output a prefix of some valid document. Decoding then costs one
dictionary walk per token. The vocabulary is handed over as the bytes each token stands for,
so multi-byte characters split over byte-level tokens are handled by the library.

JSON is generated without optional whitespace (the compact form the training answers use)
so a model cannot stall in an endless run of spaces; every string we build into an
extraction schema has a ``maxLength``, which bounds the reply (``Constraint.max_bytes``):
with a budget of that many tokens, even a random model finishes a valid document.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from outlines_core import Guide, Index, Vocabulary
from outlines_core.json_schema import build_regex_from_schema

from ecomvlm.catalog.taxonomy import CATEGORIES, Category

OPEN_KEYS = ("Brand",)  # open sets in any real marketplace: free text, not the synthetic list
MAX_VALUE_CHARS = 48  # longest free-text value; bounds the reply
MAX_SCHEMA_CHARS = 16_000  # a bigger user schema could make the compiled index explode
_INDEX_CACHE_SIZE = 64
_STATE_CACHE_SIZE = 256  # allowed-token tensors kept per constraint (<= 400 KB each)


class SchemaError(ValueError):
    """A schema that outlines-core cannot compile (or one we refuse to try)."""


# ---------------------------------------------------------------- vocabulary as bytes
def _gpt2_unicode_to_byte() -> dict[str, int]:
    """Inverse of GPT-2's bytes_to_unicode: the printable stand-in character -> its byte."""
    keep = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1),
            *range(ord("®"), ord("ÿ") + 1)]
    chars, extra = list(keep), 0
    for b in range(256):
        if b not in keep:
            keep.append(b)
            chars.append(256 + extra)
            extra += 1
    return {chr(c): b for b, c in zip(keep, chars)}


def _decoder_type(tokenizer: Any) -> str:
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        return ""
    decoder = json.loads(backend.to_str()).get("decoder") or {}
    if decoder.get("type") == "Sequence":  # SentencePiece-style: Replace + ByteFallback + ...
        return "+".join(d.get("type", "") for d in decoder.get("decoders", []))
    return decoder.get("type", "")


def token_bytes(tokenizer: Any) -> dict[bytes, list[int]]:
    """Bytes of every ordinary token (special and added tokens left out: never allowed)."""
    special = set(getattr(tokenizer, "all_special_ids", [])) | set(
        getattr(tokenizer, "added_tokens_decoder", {}))
    kind = _decoder_type(tokenizer)
    byte_level = kind == "ByteLevel"
    table = _gpt2_unicode_to_byte() if byte_level else {}
    out: dict[bytes, list[int]] = {}
    for token, token_id in tokenizer.get_vocab().items():
        if token_id in special:
            continue
        if byte_level:
            try:
                data = bytes(table[c] for c in token)
            except KeyError:
                continue  # not a byte-level symbol string: unreachable by decoding
        elif len(token) == 6 and token.startswith("<0x") and token.endswith(">"):
            data = bytes([int(token[3:5], 16)])  # SentencePiece byte fallback
        elif "Replace" in kind or "\u2581" in token:
            data = token.replace("\u2581", " ").encode()
        else:
            data = tokenizer.convert_tokens_to_string([token]).encode()
        if data:
            out.setdefault(data, []).append(token_id)
    return out


# ---------------------------------------------------------------- compiled constraints
@dataclass(frozen=True)
class Constraint:
    """A compiled schema; ``guide()`` gives one row's decoding state."""

    schema: dict[str, Any]
    index: Index
    max_bytes: int | None  # longest possible document, when the schema bounds it
    eos_token_id: int
    # automaton state -> its allowed token ids as a tensor, shared by every row decoding this
    # schema: inside a free string the set is ~the whole vocabulary, and turning that list
    # into a tensor at every step was most of the constraint's cost per token
    state_ids: OrderedDict = field(default_factory=OrderedDict, compare=False, repr=False)

    def guide(self) -> GuidedRow:
        return GuidedRow(Guide(self.index), self.eos_token_id, self.state_ids)

    @property
    def max_tokens(self) -> int | None:
        """Tokens enough for any document: every ordinary token is at least one byte."""
        return None if self.max_bytes is None else self.max_bytes + 1


class GuidedRow:
    """One row's automaton; ``allowed(generated)`` catches up on new tokens, then answers."""

    def __init__(self, guide: Guide, eos_token_id: int, state_ids: OrderedDict | None = None):
        self.guide, self.consumed, self.eos_token_id = guide, 0, eos_token_id
        self.state_ids = OrderedDict() if state_ids is None else state_ids

    def _advance(self, generated: Sequence[int]) -> None:
        for token in generated[self.consumed:]:
            self.guide.advance(token, return_tokens=False)
        self.consumed = len(generated)

    def allowed(self, generated: Sequence[int]) -> list[int]:
        self._advance(generated)
        return self.guide.get_tokens()

    def allowed_ids(self, generated: Sequence[int]) -> torch.Tensor:
        """The same set as ``allowed``, as a long tensor cached by automaton state."""
        self._advance(generated)
        state = self.guide.get_state()
        ids = self.state_ids.get(state)
        if ids is None:
            ids = torch.tensor(self.guide.get_tokens(), dtype=torch.long)
            self.state_ids[state] = ids
            if len(self.state_ids) > _STATE_CACHE_SIZE:
                self.state_ids.popitem(last=False)
        else:
            self.state_ids.move_to_end(state)
        return ids

    def finished_after(self, generated: Sequence[int]) -> bool:
        """Whether ``generated`` is a complete document (the reply may end here)."""
        self.allowed(generated)
        return self.guide.is_finished() or self.eos_token_id in self.guide.get_tokens()


class ConstraintCompiler:
    """Schema -> :class:`Constraint` for one tokenizer, with an LRU cache (compiling an index
    over a 49k vocabulary takes ~0.3 s; the same schema comes back on every request)."""

    def __init__(self, tokenizer: Any):
        self.eos_token_id = tokenizer.eos_token_id
        self.vocabulary = Vocabulary(self.eos_token_id, token_bytes(tokenizer))
        self._cache: OrderedDict[str, Index] = OrderedDict()
        self._lock = threading.Lock()

    def compile(self, schema: dict[str, Any], max_bytes: int | None = None) -> Constraint:
        text = json.dumps(schema, sort_keys=True, ensure_ascii=False)
        if len(text) > MAX_SCHEMA_CHARS:
            raise SchemaError(f"JSON schema of {len(text)} chars; at most {MAX_SCHEMA_CHARS}")
        with self._lock:
            index = self._cache.get(text)
            if index is not None:
                self._cache.move_to_end(text)
        if index is None:
            try:
                regex = build_regex_from_schema(json.dumps(schema, ensure_ascii=False), "")
                index = Index(regex, self.vocabulary)
            except (ValueError, TypeError, RuntimeError) as error:
                raise SchemaError(f"unsupported JSON schema: {error}") from None
            with self._lock:
                self._cache[text] = index
                while len(self._cache) > _INDEX_CACHE_SIZE:
                    self._cache.popitem(last=False)
        return Constraint(schema, index, max_bytes, self.eos_token_id)


# ---------------------------------------------------------------- extraction schemas
def _value_schema(category: Category | None, key: str, open_keys: Sequence[str],
                  max_chars: int) -> tuple[dict[str, Any], int]:
    """A key's value schema and the most bytes its JSON can take."""
    values: tuple[str, ...] = ()
    if category is not None and key in category.keys and key not in open_keys:
        values = category.aspect(key).values
    if values:
        longest = max(len(json.dumps(v, ensure_ascii=False).encode()) for v in values)
        return {"anyOf": [{"enum": list(values)}, {"type": "null"}]}, max(longest, 4)
    # a character is at most 4 UTF-8 bytes; an escape (\n) is 2 bytes for one character
    string = {"type": "string", "maxLength": max_chars}
    return {"anyOf": [string, {"type": "null"}]}, 2 + 4 * max_chars


def extraction_schema(category: str | Category | None, keys: Sequence[str] | None = None,
                      open_keys: Sequence[str] = OPEN_KEYS,
                      max_chars: int = MAX_VALUE_CHARS) -> tuple[dict[str, Any], int]:
    """The attribute-extraction schema and the longest reply it admits, in bytes.

    Exactly ``keys`` (default: the category's, in taxonomy order), all required, nothing
    else; each value is null or, for a closed aspect of the category, one of the taxonomy's
    values; other keys (and ``open_keys``) take a string of at most ``max_chars``.
    """
    cat = CATEGORIES.get(category) if isinstance(category, str) else category
    if keys is None:
        if cat is None:
            raise KeyError(f"unknown category {category!r}; pass keys, or one of "
                           f"{sorted(CATEGORIES)}")
        keys = cat.keys
    if not keys or len(set(keys)) != len(keys):
        raise ValueError(f"extraction keys must be distinct and non-empty: {list(keys)}")
    properties, size = {}, 2  # the braces
    for key in keys:
        properties[key], value_bytes = _value_schema(cat, key, open_keys, max_chars)
        size += len(json.dumps(key, ensure_ascii=False).encode()) + 1 + value_bytes + 1
    schema = {"type": "object", "properties": properties, "required": list(keys),
              "additionalProperties": False}
    return schema, size


def extraction_constraint(compiler: ConstraintCompiler, category: str | Category | None,
                          keys: Sequence[str] | None = None, **kwargs: Any) -> Constraint:
    schema, max_bytes = extraction_schema(category, keys, **kwargs)
    return compiler.compile(schema, max_bytes)
