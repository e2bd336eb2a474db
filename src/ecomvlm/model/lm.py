"""Causal language models as the VLM's decoder: a model, its tokenizer and a chat template.

Every LM builder returns a :class:`LoadedLM`; ``hf:<hub id or path>`` loads any transformers
causal LM (Qwen, Llama, Gemma, SmolLM...). Tokenizers without a chat template get ChatML so
that instruction data renders the same way for every backbone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel

IMAGE_TOKEN = "<image>"
_HUB_OPTIONS = {"revision", "cache_dir", "token", "trust_remote_code", "local_files_only",
                "subfolder"}

# ChatML; content may be a string or a list of {"type": "text"|"image"} parts (images render
# as <image>). {% generation %} marks assistant text for return_assistant_tokens_mask.
CHATML_TEMPLATE = (
    "{%- macro render(content) -%}"
    "{%- if content is string -%}{{- content -}}"
    "{%- else -%}{%- for part in content -%}"
    "{%- if part['type'] == 'image' -%}{{- '<image>' -}}"
    "{%- elif part['type'] == 'text' -%}{{- part['text'] -}}{%- endif -%}"
    "{%- endfor -%}{%- endif -%}"
    "{%- endmacro -%}"
    "{%- for message in messages -%}"
    "{{- '<|im_start|>' + message['role'] + '\\n' -}}"
    "{%- if message['role'] == 'assistant' -%}"
    "{%- generation -%}{{- render(message['content']) + '<|im_end|>' -}}{%- endgeneration -%}"
    "{%- else -%}{{- render(message['content']) + '<|im_end|>' -}}{%- endif -%}"
    "{{- '\\n' -}}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\\n' -}}{%- endif -%}"
)


@dataclass
class LoadedLM:
    """A causal LM ready for a VLM: ``model`` (PreTrainedModel) and ``tokenizer`` (fast).

    ``source`` says where the weights came from: "pretrained" (hub or local checkpoint),
    "cache" (previously converted), "converted" (converted just now), "random" (tiny).
    """

    model: PreTrainedModel
    tokenizer: Any
    spec: str
    source: str

    @property
    def hidden_size(self) -> int:
        return self.model.get_input_embeddings().embedding_dim

    def ensure_tokens(self, tokens: list[str]) -> list[int]:
        """Add missing special tokens (e.g. ``<image>``), growing the embeddings; their ids."""
        missing = [t for t in tokens if t not in self.tokenizer.get_vocab()]
        if missing:
            self.tokenizer.add_tokens(missing, special_tokens=True)
            if len(self.tokenizer) > self.model.get_input_embeddings().num_embeddings:
                self.model.resize_token_embeddings(len(self.tokenizer), mean_resizing=True)
        return self.tokenizer.convert_tokens_to_ids(tokens)

    @torch.no_grad()
    def chat(self, messages: list[dict[str, Any]] | str, max_new_tokens: int = 64) -> str:
        """Greedy reply to a conversation (or a single user message) through the chat template."""
        if isinstance(messages, str):
            messages = [{"role": "user", "content": messages}]
        inputs = self.tokenizer.apply_chat_template(
            messages, add_generation_prompt=True, return_tensors="pt", return_dict=True
        ).to(self.model.device)
        out = self.model.generate(
            **inputs, max_new_tokens=max_new_tokens, do_sample=False,
            pad_token_id=self.tokenizer.pad_token_id,
        )
        reply = out[0, inputs["input_ids"].shape[1]:]  # [T_new]
        return self.tokenizer.decode(reply, skip_special_tokens=True).strip()


def resolve_dtype(dtype: str | torch.dtype | None) -> torch.dtype | str | None:
    """'bfloat16' -> torch.bfloat16; 'auto' and None pass through."""
    if isinstance(dtype, str) and dtype != "auto":
        return getattr(torch, dtype)
    return dtype


def prepare_tokenizer(tokenizer: Any) -> Any:
    """Give a tokenizer what the VLM relies on: a chat template and a pad token."""
    if not getattr(tokenizer, "chat_template", None):
        tokenizer.chat_template = CHATML_TEMPLATE
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_hf_lm(name_or_path: str, *, dtype: str | torch.dtype | None = None,
               torch_dtype: str | torch.dtype | None = None,
               device: str | torch.device | None = None, **hub_kwargs: Any) -> LoadedLM:
    """Any transformers causal LM and its tokenizer from the hub or a local directory."""
    dtype = resolve_dtype(dtype if dtype is not None else torch_dtype)
    model_kwargs = dict(hub_kwargs)
    if dtype is not None:
        model_kwargs["dtype"] = dtype
    model = AutoModelForCausalLM.from_pretrained(name_or_path, **model_kwargs).eval()
    if device is not None:
        model = model.to(device)
    # model-only options (attn_implementation, device_map...) must not reach the tokenizer
    tok_kwargs = {k: v for k, v in hub_kwargs.items() if k in _HUB_OPTIONS}
    tokenizer = prepare_tokenizer(AutoTokenizer.from_pretrained(name_or_path, **tok_kwargs))
    return LoadedLM(model=model, tokenizer=tokenizer, spec=f"hf:{name_or_path}",
                    source="pretrained")
