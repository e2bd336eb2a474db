"""Named registries: one decorator to add a builder, one lookup, an error listing known names.

A spec is ``source:name`` (``packaged:efficientnet-lite0``, ``tiny:vit``) or a prefix family
(``hf:<model id or path>``, ``openai:<url>``) whose builder receives the rest of the spec.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


class UnknownNameError(KeyError):
    """A spec that no builder in a registry answers to."""

    def __str__(self) -> str:  # KeyError quotes its message; we want it readable
        return str(self.args[0])


class Registry:
    def __init__(self, kind: str):
        self.kind = kind
        self._exact: dict[str, Callable[..., Any]] = {}
        self._prefix: dict[str, Callable[..., Any]] = {}

    def register(self, name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Register ``name`` exactly, or a whole family when ``name`` ends with ':' (``hf:``)."""

        def add(builder: Callable[..., Any]) -> Callable[..., Any]:
            table = self._prefix if name.endswith(":") else self._exact
            if name in table:
                raise ValueError(f"{self.kind} registry: {name!r} is registered twice")
            table[name] = builder
            return builder

        return add

    def names(self) -> list[str]:
        return sorted(self._exact) + sorted(f"{p}<...>" for p in self._prefix)

    def __contains__(self, spec: str) -> bool:
        try:
            self.resolve(spec)
        except UnknownNameError:
            return False
        return True

    def resolve(self, spec: str) -> tuple[Callable[..., Any], str | None]:
        """The builder for ``spec`` and, for a prefix family, the part after the prefix."""
        if spec in self._exact:
            return self._exact[spec], None
        for prefix, builder in self._prefix.items():
            if spec.startswith(prefix) and len(spec) > len(prefix):
                return builder, spec[len(prefix):]
        raise UnknownNameError(
            f"unknown {self.kind} {spec!r}; known: {', '.join(self.names()) or '(none)'}"
        )

    def build(self, spec: str, **kwargs: Any) -> Any:
        builder, rest = self.resolve(spec)
        return builder(rest, **kwargs) if rest is not None else builder(**kwargs)


VISION = Registry("vision tower")
PROJECTOR = Registry("projector")
LM = Registry("language model")
BENCHMARK = Registry("benchmark")
CAPTIONER = Registry("captioner")
VERIFIER = Registry("verifier")
