"""Stage 6 of curation: canonical samples (``ecomvlm.samples``) -> what common trainers read.

- ``export_llava``: LLaVA's JSON list of {"id", "image", "conversations"}; image paths are
  relative to an image folder (default: the samples file's folder), passed to LLaVA as
  ``--image_folder``. The folder is recorded in ``export_info.json`` next to the data.
- ``export_sharegpt``: LLaMA-Factory's sharegpt formatting in its OpenAI-style variant
  ({"messages": [{"role", "content"}], "images": [...]}) plus the ``dataset_info.json`` entry
  that declares it. Image paths are relative to ``out_dir``, LLaMA-Factory's ``dataset_dir``
  (and default ``media_dir``).
- ``export_hf``: a Hugging Face ``datasets`` folder (``save_to_disk``) with columns id, images,
  messages, meta (a JSON string). ``images`` are path strings relative to ``out_dir``, or, with
  ``embed_images=True``, a list of ``datasets.Image`` with the bytes inside.

All three read the samples file as a stream and write through a temp file or folder, so a
failed export never leaves a half-written dataset behind.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Self

from ecomvlm.samples import Sample, read_samples

LLAVA_ROLES = {"user": "human", "assistant": "gpt"}
SHAREGPT_TAGS = {"role_tag": "role", "content_tag": "content", "user_tag": "user",
                 "assistant_tag": "assistant", "system_tag": "system"}


def _absolute(image: str, base: Path) -> str:
    if "://" in image or os.path.isabs(image):
        return image
    return str((base / image).resolve())


def _relative(image: str, base: Path, root: Path) -> str:
    """``image`` (relative to ``base``) as a path relative to ``root``; URLs unchanged."""
    absolute = _absolute(image, base)
    if "://" in absolute:
        return absolute
    return Path(os.path.relpath(absolute, root.resolve())).as_posix()


class _JsonListWriter:
    """Writes a JSON list one element at a time to a temp file, renamed into place on close."""

    def __init__(self, path: Path):
        self.path, self.tmp = path, path.with_name(path.name + ".tmp")
        path.parent.mkdir(parents=True, exist_ok=True)
        self.f = self.tmp.open("w", encoding="utf-8")
        self.f.write("[")
        self.count = 0

    def add(self, item: dict) -> None:
        self.f.write(("," if self.count else "") + "\n" + json.dumps(item, ensure_ascii=False))
        self.count += 1

    def __enter__(self) -> Self:
        return self

    def __exit__(self, kind, *_) -> None:
        self.f.write("\n]\n")
        self.f.close()
        if kind is None:
            os.replace(self.tmp, self.path)
        else:
            self.tmp.unlink(missing_ok=True)


def _check_turns(sample: Sample) -> None:
    """Chat trainers want [system] then user/assistant turns alternating, user first."""
    roles = [m.role for m in sample.messages]
    if roles and roles[0] == "system":
        roles = roles[1:]
    expected = ["user", "assistant"] * (len(roles) // 2)
    if roles != expected:
        raise ValueError(f"sample {sample.id!r}: turns {roles} do not alternate user/assistant")


def export_llava(samples_path: str | os.PathLike, out_dir: str | os.PathLike, *,
                 image_folder: str | os.PathLike | None = None,
                 file_name: str = "llava.json") -> dict:
    """LLaVA JSON: one image gives ``"image": str``, several ``"image": [str, ...]`` (one
    ``<image>`` token each), none no key. LLaVA has no system turn, so a system message is
    prepended to the first human turn."""
    samples_path, out_dir = Path(samples_path), Path(out_dir)
    base = samples_path.resolve().parent
    folder = Path(image_folder).resolve() if image_folder is not None else base
    target = out_dir / file_name
    with _JsonListWriter(target) as writer:
        for sample in read_samples(samples_path):
            _check_turns(sample)
            system = [m.content for m in sample.messages if m.role == "system"]
            turns = [{"from": LLAVA_ROLES[m.role], "value": m.content}
                     for m in sample.messages if m.role != "system"]
            if system:
                turns[0]["value"] = "\n".join(system) + "\n" + turns[0]["value"]
            item: dict = {"id": sample.id}
            images = [_relative(p, base, folder) for p in sample.images]
            if len(images) == 1:
                item["image"] = images[0]
            elif images:
                item["image"] = images
            item["conversations"] = turns
            writer.add(item)
    info = {"format": "llava", "path": str(target), "count": writer.count,
            "image_folder": str(folder)}
    (out_dir / "export_info.json").write_text(json.dumps(info, indent=1) + "\n", "utf-8")
    return info


def export_sharegpt(samples_path: str | os.PathLike, out_dir: str | os.PathLike,
                    dataset_name: str = "ecomvlm") -> dict:
    """LLaMA-Factory sharegpt data ``<dataset_name>.json`` plus its ``dataset_info.json`` entry
    (merged into an existing file, so several stages can share one ``dataset_dir``)."""
    samples_path, out_dir = Path(samples_path), Path(out_dir)
    base = samples_path.resolve().parent
    file_name = f"{dataset_name}.json"
    with _JsonListWriter(out_dir / file_name) as writer:
        for sample in read_samples(samples_path):
            _check_turns(sample)
            writer.add({
                "id": sample.id,
                "messages": [{"role": m.role, "content": m.content} for m in sample.messages],
                "images": [_relative(p, base, out_dir) for p in sample.images],
            })
    info_path = out_dir / "dataset_info.json"
    registry = json.loads(info_path.read_text("utf-8")) if info_path.exists() else {}
    registry[dataset_name] = {
        "file_name": file_name,
        "formatting": "sharegpt",
        "columns": {"messages": "messages", "images": "images"},
        "tags": dict(SHAREGPT_TAGS),
    }
    tmp = info_path.with_name(info_path.name + ".tmp")
    tmp.write_text(json.dumps(registry, indent=2, ensure_ascii=False) + "\n", "utf-8")
    os.replace(tmp, info_path)
    return {"format": "sharegpt", "path": str(out_dir / file_name), "count": writer.count,
            "dataset_info": str(info_path), "dataset_name": dataset_name}


def _hf_rows(samples_path: str, out_dir: str, embed_images: bool) -> Iterator[dict]:
    base, root = Path(samples_path).resolve().parent, Path(out_dir)
    for sample in read_samples(samples_path):
        if embed_images:
            images = []
            for p in sample.images:
                source = _absolute(p, base)
                if "://" in source:
                    raise ValueError(f"sample {sample.id!r}: cannot embed remote image {source}")
                images.append({"bytes": Path(source).read_bytes(), "path": Path(source).name})
        else:
            images = [_relative(p, base, root) for p in sample.images]
        yield {"id": sample.id, "images": images,
               "messages": [{"role": m.role, "content": m.content} for m in sample.messages],
               "meta": json.dumps(sample.meta, ensure_ascii=False, sort_keys=True)}


def hf_features(embed_images: bool = False):
    import datasets

    image = datasets.Image() if embed_images else datasets.Value("string")
    return datasets.Features({
        "id": datasets.Value("string"),
        "images": datasets.List(image),
        "messages": datasets.List({"role": datasets.Value("string"),
                                   "content": datasets.Value("string")}),
        "meta": datasets.Value("string"),
    })


def export_hf(samples_path: str | os.PathLike, out_dir: str | os.PathLike, *,
              embed_images: bool = False) -> dict:
    """``datasets.Dataset`` built by streaming the samples (``from_generator``), then
    ``save_to_disk(out_dir)``; read it back with ``datasets.load_from_disk(out_dir)``."""
    import datasets

    samples_path, out_dir = Path(samples_path), Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    # a fresh cache per call: from_generator would otherwise reuse an older build of the same
    # file path even when the samples changed
    with tempfile.TemporaryDirectory(dir=out_dir.parent, prefix=".hf-build-") as work:
        features = hf_features(embed_images)
        if next(read_samples(samples_path), None) is None:  # from_generator refuses no rows
            dataset = datasets.Dataset.from_dict({k: [] for k in features}, features=features)
        else:
            dataset = datasets.Dataset.from_generator(
                _hf_rows, features=features, cache_dir=os.path.join(work, "cache"),
                gen_kwargs={"samples_path": str(samples_path), "out_dir": str(out_dir),
                            "embed_images": embed_images})
        staged = Path(work) / "dataset"
        # one shard at least: an empty dataset saved with zero shards does not load back
        dataset.save_to_disk(str(staged), num_shards=None if len(dataset) else 1)
        count = len(dataset)
        del dataset
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.replace(staged, out_dir)
    return {"format": "hf", "path": str(out_dir), "count": count,
            "images": "datasets.Image (embedded)" if embed_images
            else "path strings relative to the dataset folder"}
