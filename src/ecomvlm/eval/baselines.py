"""Baselines, run by the same command as the models so every table has them beside it.

- ``text-only[:SPEC]``: the model's LM (default: the embedded default's) sees the listing's
  title and description in place of the photos. What the text alone gives away.
- ``perception``: the curation pipeline's eyes without any VLM: clean -> perceive -> verify
  rules. Aspects come from perception alone (the dominant colour of the product shots, the
  most confident OCR reading of a label key, the pattern detector where it exists and is
  sure), the category from the rules' belief (photos via the ImageNet bridge, plus the
  title), marks from the template detector, battery from marks, lithium text and category.
  The seller's aspect claims are never used. With no signal it abstains ("unknown", scored
  wrong: perception has nothing to say about a neckline); extraction answers null.
- ``majority``: the most frequent *true* value in the train split's answer key for the
  question (the listing's listed category and the aspect), the most frequent category, mark
  set and battery answer; for multiple choice, the option most frequent in train.
- ``untrained`` (``base:``) lives in adapters.py: the un-adapted model, projector untrained.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path
from typing import Any

from ecomvlm.catalog.taxonomy import CATEGORIES, FASHION_CATEGORIES
from ecomvlm.curate.phrasings import DATA_LABEL, colour_combo, fence_text, title_block

from .adapters import ModelAdapter, Progress
from .base import EvalSample, Generation
from .catalog import EvalItem, TrainPriors
from .parsing import mark_names

MODEL_FREE = ("aspect", "fashion", "extract", "multi_image")  # crops are for models
FASHION_KEYS = {"pattern": "Pattern", "sleeve": "Sleeve Length", "neckline": "Neckline"}
ABSTAIN = "unknown"


def letter(options: list[str], value: str | None) -> str:
    return chr(65 + options.index(value)) if value in options else ABSTAIN


class _ListingBaseline(ModelAdapter):
    """Shared: answers built per listing from the catalog item behind each sample."""

    supported = MODEL_FREE

    def bind(self, items: list[EvalItem], catalog_dir: str | Path) -> None:
        self.items = {item.id: item for item in items}
        self.catalog_dir = Path(catalog_dir)

    def answer(self, sample: EvalSample, item: EvalItem) -> str:
        raise NotImplementedError

    def generate(self, samples: list[EvalSample], batch_size: int = 16,
                 progress: Progress = None) -> list[Generation]:
        out = []
        for sample in samples:
            began = time.perf_counter()
            text = self.answer(sample, self.items[sample.meta["listing_id"]])
            out.append(Generation(text, round(time.perf_counter() - began, 5), 0))
            if progress:
                progress(1)
        return out


# ---------------------------------------------------------------- majority
class MajorityAdapter(_ListingBaseline):
    name = spec = "majority"

    def bind(self, items: list[EvalItem], catalog_dir: str | Path) -> None:
        super().bind(items, catalog_dir)
        self.priors = TrainPriors.from_catalog(catalog_dir, "train")

    @staticmethod
    def listed_category(item: EvalItem) -> str:
        from ecomvlm.curate.clean import canonical_category

        return canonical_category(item.listing.get("category", ""))

    def counts(self, item: EvalItem, key: str) -> Counter:
        found = self.priors.values.get((self.listed_category(item), key))
        if found is None:  # a listed category without this key: pool every category
            found = Counter()
            for (_, k), c in self.priors.values.items():
                if k == key:
                    found.update(c)
        return found

    def best(self, counts: Counter, options: list[str] | None = None) -> str | None:
        ranked = [v for v, _ in counts.most_common() if v is not None]
        if options is None:
            return ranked[0] if ranked else None
        return max(options, key=lambda o: (counts.get(o, 0), -options.index(o)))

    def answer(self, sample: EvalSample, item: EvalItem) -> str:
        meta, bench = sample.meta, sample.benchmark
        options = meta.get("options")
        if bench == "aspect":
            counts = self.priors.categories if meta["key"] == "Category" else \
                self.counts(item, meta["key"])
            value = self.best(counts, options)
            return (letter(options, value) if options else value) or ABSTAIN
        if bench == "fashion":
            q = meta["question"]
            if q == "category":
                counts = Counter({c.name: self.priors.categories[c.name]
                                  for c in FASHION_CATEGORIES})
            elif q == "colours":
                pattern = "Pattern" in item.category.keys
                combo = colour_combo({"Color": self.best(self.counts(item, "Color")),
                                      "Pattern": self.best(self.counts(item, "Pattern"))},
                                     pattern)
                counts = Counter({combo: 1}) if combo else Counter()
            else:
                counts = self.counts(item, FASHION_KEYS[q])
            return letter(options, self.best(counts, options))
        if bench == "extract":
            reply = {}
            for key in meta["keys"]:
                counts = self.counts(item, key)
                reply[key] = counts.most_common(1)[0][0] if counts else None
            return json.dumps(reply)
        cat = self.listed_category(item)
        if meta["question"] == "marks":
            sets = self.priors.marks.get(cat) or sum(self.priors.marks.values(), Counter())
            return mark_names(sets.most_common(1)[0][0] if sets else ())
        votes = self.priors.battery.get(cat, Counter())
        return "Yes" if votes[True] > votes[False] else "No"


# ---------------------------------------------------------------- perception + rules
class PerceptionAdapter(_ListingBaseline):
    name = spec = "perception"

    def __init__(self) -> None:
        self._verified: dict[str, Any] = {}

    def generate(self, samples: list[EvalSample], batch_size: int = 16,
                 progress: Progress = None) -> list[Generation]:
        import torch

        # one thread, as curation's workers run it: small convolutions and ONNX sessions lose
        # more to thread hand-offs than they gain (measured 3 s vs 3-18 s a listing on a
        # loaded 2-core machine)
        previous = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            return super().generate(samples, batch_size, progress)
        finally:
            torch.set_num_threads(previous)

    def verified(self, item: EvalItem) -> Any:
        if item.id not in self._verified:
            from ecomvlm.curate.clean import KeyMapper, clean_listing
            from ecomvlm.curate.perceive_local import PerceptionCaptioner
            from ecomvlm.curate.verify import PerceptionVerifier
            from ecomvlm.schema import Listing

            if not hasattr(self, "_parts"):
                self._parts = (KeyMapper(), PerceptionCaptioner(None), PerceptionVerifier())
            mapper, captioner, verifier = self._parts
            clean = clean_listing(Listing.model_validate(item.listing), item.root, mapper)
            self._verified[item.id] = verifier.verify(clean, captioner.perceive(clean))
        return self._verified[item.id]

    def reading(self, vl: Any, key: str) -> str | None:
        """What perception alone says about ``key``: dominant colour, a detected pattern, or
        the most confident OCR reading that is a value of the believed category."""
        from ecomvlm.curate import verify_rules as rules

        cat = CATEGORIES.get(vl.category)
        if cat is None or key not in cat.keys:
            return None
        if key == "Color":
            shares = rules.colour_shares(vl.images)
            top = max(shares, key=shares.get) if shares else None
            return top if top in cat.aspect(key).values else None
        if key == "Pattern":
            return self.pattern(vl)
        readings = [r for r in rules.read_values(key, vl.images, "")
                    if r.value in cat.aspect(key).values]
        return max(readings, key=lambda r: r.conf).value if readings else None

    def pattern(self, vl: Any) -> str | None:
        try:  # the pattern detector is optional: use it only where it exists and is sure
            from ecomvlm.curate.pattern_detect import detect_pattern
        except ImportError:
            return None
        from ecomvlm.images import load_image

        guesses = [detect_pattern(load_image(src)) for src, p in zip(vl.listing.images, vl.images)
                   if p.role == "product"]
        sure = [g for g in guesses if g.confidence >= 0.5]
        return max(sure, key=lambda g: g.confidence).label if sure else None

    def value(self, vl: Any, key: str) -> str | None:
        return self.reading(vl, key)

    def answer(self, sample: EvalSample, item: EvalItem) -> str:
        vl, meta, bench = self.verified(item), sample.meta, sample.benchmark
        options = meta.get("options")
        if bench == "aspect":
            value = vl.category if meta["key"] == "Category" else self.value(vl, meta["key"])
            return (letter(options, value) if options else value) or ABSTAIN
        if bench == "fashion":
            q = meta["question"]
            if q == "category":
                value = vl.category
            elif q == "colours":
                cat = CATEGORIES.get(vl.category)
                value = colour_combo({"Color": self.value(vl, "Color"),
                                      "Pattern": self.value(vl, "Pattern")},
                                     bool(cat and "Pattern" in cat.keys))
            else:
                value = self.value(vl, FASHION_KEYS[q])
            return letter(options, value)
        if bench == "extract":
            return json.dumps({k: self.value(vl, k) for k in meta["keys"]})
        if meta["question"] == "marks":
            return mark_names(vl.compliance)
        return {True: "Yes", False: "No"}.get(vl.battery, ABSTAIN)


# ---------------------------------------------------------------- text only
DESCRIPTION_LABEL = DATA_LABEL.replace("title", "description")


class TextOnlyAdapter(ModelAdapter):
    """Wraps a model adapter; every photo is replaced by the listing's own words."""

    def __init__(self, inner: ModelAdapter, max_description_chars: int = 600):
        self.inner = inner
        self.name = "text-only" if inner.spec == "base:" else f"text-only-{inner.name}"
        self.spec = f"text-only:{inner.spec}"
        self.max_chars = max_description_chars

    def bind(self, items: list[EvalItem], catalog_dir: str | Path) -> None:
        self.items = {item.id: item for item in items}

    def shown(self, sample: EvalSample) -> EvalSample:
        if not sample.images:
            return sample
        from ecomvlm.curate.clean import clean_description

        item = self.items[sample.meta["listing_id"]]
        body = sample.prompt.replace("<image>\n", "").replace("<image>", "")
        description = clean_description(item.listing.get("description", ""))
        text = f"{DESCRIPTION_LABEL}: <<<{fence_text(description, self.max_chars)}>>>"
        block = title_block(item.title)
        head = text if block in body else f"{block}\n{text}"
        return EvalSample(sample.id, sample.benchmark, f"{head}\n{body}", [], sample.target,
                          sample.max_new_tokens, sample.meta)

    def generate(self, samples: list[EvalSample], batch_size: int = 16,
                 progress: Progress = None) -> list[Generation]:
        gens = self.inner.generate([self.shown(s) for s in samples], batch_size, progress)
        for gen in gens:
            gen.image_tokens = 0
        return gens

    def text_nll(self, texts: list[str]) -> list[tuple[float, int]] | None:
        return self.inner.text_nll(texts)

    def describe(self) -> dict[str, Any]:
        return {**self.inner.describe(), "name": self.name, "spec": self.spec,
                "baseline": "text-only", "tokens_per_image": 0}
