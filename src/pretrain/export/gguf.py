"""A Llama-family Hugging Face model and its byte-level BPE tokenizer written as one GGUF file,
through the ``gguf`` package's GGUFWriter and quantizers (gguf-py, part of llama.cpp).

What goes in the file follows llama.cpp's converter, ``convert_hf_to_gguf.py`` (its
``LlamaModel`` and ``TextModel._set_vocab_gpt2``, as of gguf-py 0.19): the ``llama``
architecture's hyperparameter keys, llama.cpp's tensor names (gguf-py's TensorNameMap), query
and key rows permuted into llama.cpp's rotary layout (``LlamaModel.permute``), no
``output.weight`` when the embeddings are tied (llama.cpp then reads ``token_embd``), norms in
F32, and a 2-D weight whose rows do not split into 32-value blocks kept in F16, as the
converter does on a QuantError. The tokenizer is stored as ``gpt2`` (byte-level BPE) with the
``gpt-2`` pre-tokenizer, the vocabulary, merges, token types (CONTROL for special tokens) and
the BOS/EOS/padding ids, and, for a fine-tuned chat model, its chat template and end-of-turn
token (``tokenizer.chat_template``, ``tokenizer.ggml.eot_token_id``).

Quantized types: Q8_0, Q5_0 and Q4_0 are quantized by gguf-py's numpy ports of ggml's reference
quantizers (``gguf.quants.quantize``). In the 4- and 5-bit files the output layer is Q8_0
(``output.weight``, or with tied embeddings ``token_embd.weight``, which llama.cpp then reads as
the output layer): llama-quantize likewise keeps the output layer at a higher precision (Q6_K,
which gguf-py cannot write).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pretrain.config.merge import EXPORTED_MODEL_TYPE, tokenizer_problem
from pretrain.errors import ConfigError
from pretrain.io import atomic_path

CONVERTER = "llama.cpp convert_hf_to_gguf.py (LlamaModel, _set_vocab_gpt2) as of gguf-py 0.19"
"""The conversion this writer follows, recorded in metrics/export.json."""

GENERATION_TAGS = re.compile(r"\{%-?\s*(?:end)?generation\s*-?%\}")
"""transformers' ``{% generation %}`` / ``{% endgeneration %}`` tags in a chat template."""

QUANTIZED_OUTPUT = "Q8_0"
"""The type of the output layer in the 4- and 5-bit files."""


def file_types() -> dict[str, tuple[Any, Any]]:
    """GGUF type name -> (GGMLQuantizationType of the 2-D weights, LlamaFileType of the file)."""
    import gguf

    q, f = gguf.GGMLQuantizationType, gguf.LlamaFileType
    return {"F32": (q.F32, f.ALL_F32), "F16": (q.F16, f.MOSTLY_F16), "BF16": (q.BF16, f.MOSTLY_BF16),
            "Q8_0": (q.Q8_0, f.MOSTLY_Q8_0), "Q5_0": (q.Q5_0, f.MOSTLY_Q5_0),
            "Q4_0": (q.Q4_0, f.MOSTLY_Q4_0)}


def check_exportable(model: torch.nn.Module, tokenizer) -> None:
    """Raise ConfigError (one line) unless ``model`` is a Llama causal LM and ``tokenizer`` a
    byte-level BPE tokenizer with GPT-2's pre-tokenizer, what this writer can store."""
    kind = model.config.model_type
    if kind != EXPORTED_MODEL_TYPE:
        raise ConfigError(f"export: a {kind!r} model cannot be exported: the GGUF writer follows llama.cpp's "
                          "Llama conversion (model_type 'llama'); use llama.cpp's convert_hf_to_gguf.py")
    problem = tokenizer_problem(json.loads(tokenizer.backend_tokenizer.to_str()))
    if problem:
        raise ConfigError(f"export: the tokenizer is {problem}; the GGUF writer stores byte-level BPE "
                          "with GPT-2's pre-tokenizer (what the tokenizer stage trains)")


def permute(weights: np.ndarray, n_head: int) -> np.ndarray:
    """Rows of a query or key projection (out_features, in_features) reordered from Hugging
    Face's rotary layout (first half / second half of each head) to llama.cpp's (interleaved
    pairs): convert_hf_to_gguf.py ``LlamaModel.permute``. transformers undoes it on reading."""
    return (weights.reshape(n_head, 2, weights.shape[0] // n_head // 2, *weights.shape[1:])
            .swapaxes(1, 2).reshape(weights.shape))


def gguf_tensors(model: torch.nn.Module) -> dict[str, np.ndarray]:
    """The model's weights as float32 arrays under llama.cpp's tensor names, q and k permuted,
    without ``output.weight`` when the embeddings are tied."""
    import gguf

    c = model.config
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, c.num_hidden_layers)
    state = model.state_dict()
    # By the weights, not the config's flag: a folder can say tied and hold two different tensors.
    tied = "lm_head.weight" not in state or torch.equal(state["lm_head.weight"], state["model.embed_tokens.weight"])
    out = {}
    for key, value in state.items():
        if tied and key == "lm_head.weight":
            continue
        name = names.get_name(key, try_suffixes=(".weight", ".bias"))
        if name is None:
            raise ConfigError(f"export: the model's tensor {key!r} has no llama.cpp name (not a plain Llama?)")
        array = value.detach().to(torch.float32).cpu().numpy()
        if name.endswith("attn_q.weight"):
            array = permute(array, c.num_attention_heads)
        elif name.endswith("attn_k.weight"):
            array = permute(array, c.num_key_value_heads)
        out[name] = array
    return out


def tensor_type(name: str, array: np.ndarray, kind: str, tied: bool) -> Any:
    """The GGML type of one tensor in a file of type ``kind``: F32 for 1-D tensors (norms),
    Q8_0 for the output layer in a 4- or 5-bit file (``output.weight``, or ``token_embd.weight``
    when ``tied``: the file has no output.weight and llama.cpp reads the embeddings in its
    place), F16 where a quantized type's 32-value blocks do not divide a row, else the file's
    type."""
    import gguf

    q = gguf.GGMLQuantizationType
    wanted = file_types()[kind][0]
    if array.ndim < 2:
        return q.F32
    # llama-quantize quantizes tied embeddings as the output layer (src/llama-quant.cpp,
    # llama_tensor_get_type_impl: "for arches that share the same tensor between the token
    # embeddings and the output, we quantize the token embeddings with the quantization of the
    # output tensor").
    output = name == "output.weight" or (tied and name == "token_embd.weight")
    if kind in ("Q4_0", "Q5_0") and output:
        wanted = q[QUANTIZED_OUTPUT]
    block = gguf.GGML_QUANT_SIZES[wanted][0]
    return wanted if array.shape[-1] % block == 0 else q.F16


def write_gguf(model: torch.nn.Module, tokenizer, path: Path, kind: str, name: str) -> dict[str, Any]:
    """Write ``model`` (a LlamaForCausalLM) and ``tokenizer`` as the GGUF file ``path`` of type
    ``kind`` (pretrain.config.merge.GGUF_TYPES), atomically. Returns what was written: bytes,
    parameters, bits per weight and the count of tensors per GGML type. ConfigError for a model
    or tokenizer this writer cannot store (check_exportable)."""
    import gguf

    check_exportable(model, tokenizer)
    tensors = gguf_tensors(model)
    types: dict[str, int] = {}
    with atomic_path(path) as tmp:
        writer = gguf.GGUFWriter(str(tmp), gguf.MODEL_ARCH_NAMES[gguf.MODEL_ARCH.LLAMA])
        write_metadata(writer, model.config, kind, name)
        write_vocabulary(writer, tokenizer, model.config.vocab_size)
        tied = "output.weight" not in tensors
        for tensor_name, array in tensors.items():
            qtype = tensor_type(tensor_name, array, kind, tied)
            types[qtype.name] = types.get(qtype.name, 0) + 1
            if qtype == gguf.GGMLQuantizationType.F32:
                writer.add_tensor(tensor_name, np.ascontiguousarray(array, dtype=np.float32))
            elif qtype == gguf.GGMLQuantizationType.F16:
                writer.add_tensor(tensor_name, np.ascontiguousarray(array, dtype=np.float16))
            else:
                writer.add_tensor(tensor_name, gguf.quants.quantize(array, qtype), raw_dtype=qtype)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
    size = path.stat().st_size
    parameters = sum(a.size for a in tensors.values())
    return {"file": path.name, "bytes": size, "parameters": parameters,
            "bits_per_weight": round(8 * size / parameters, 3), "tensor_types": types}


def write_metadata(writer, config, kind: str, name: str) -> None:
    """The ``general.*`` and ``llama.*`` keys convert_hf_to_gguf.py writes for a Llama model."""
    import gguf

    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    writer.add_name(name)
    writer.add_file_type(file_types()[kind][1])
    writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
    writer.add_context_length(config.max_position_embeddings)
    writer.add_embedding_length(config.hidden_size)
    writer.add_block_count(config.num_hidden_layers)
    writer.add_feed_forward_length(config.intermediate_size)
    writer.add_head_count(config.num_attention_heads)
    writer.add_head_count_kv(config.num_key_value_heads)
    writer.add_key_length(head_dim)
    writer.add_value_length(head_dim)
    writer.add_rope_dimension_count(head_dim)
    theta = (getattr(config, "rope_parameters", None) or {}).get("rope_theta") or getattr(config, "rope_theta")
    writer.add_rope_freq_base(float(theta))
    writer.add_layer_norm_rms_eps(config.rms_norm_eps)
    writer.add_vocab_size(config.vocab_size)


def write_vocabulary(writer, tokenizer, vocab_size: int) -> None:
    """The tokenizer as convert_hf_to_gguf.py's ``_set_vocab_gpt2`` stores it, padded to the
    model's vocabulary size with unused tokens (``[PAD<id>]``, as the converter names them)."""
    import gguf

    vocab = tokenizer.get_vocab()
    by_id = {i: token for token, i in vocab.items()}
    # special: the named ones (BOS, EOS, pad) and added tokens marked special (a chat
    # template's <|im_start|>), CONTROL in GGUF as the converter stores them
    special = set(tokenizer.all_special_ids) | {i for i, t in tokenizer.added_tokens_decoder.items() if t.special}
    added = {i for i in tokenizer.added_tokens_decoder}
    tokens, types = [], []
    for i in range(vocab_size):
        if i not in by_id:
            tokens.append(f"[PAD{i}]")
            types.append(gguf.TokenType.UNUSED)
            continue
        tokens.append(by_id[i])
        types.append(gguf.TokenType.CONTROL if i in special else
                     gguf.TokenType.USER_DEFINED if i in added else gguf.TokenType.NORMAL)
    merges = json.loads(tokenizer.backend_tokenizer.to_str())["model"]["merges"]
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("gpt-2")
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    writer.add_token_merges([m if isinstance(m, str) else " ".join(m) for m in merges])
    for key, token_id in (("bos", tokenizer.bos_token_id), ("eos", tokenizer.eos_token_id),
                          ("pad", tokenizer.pad_token_id)):
        if token_id is not None:
            getattr(writer, f"add_{key}_token_id")(token_id)
    # The pipeline packs every document as BOS text EOS: llama.cpp adds the BOS when it tokenizes.
    writer.add_add_bos_token(tokenizer.bos_token_id is not None)
    writer.add_add_eos_token(False)
    if tokenizer.chat_template:  # a fine-tuned chat model (finetune.task: sft): llama.cpp renders with it
        # without transformers' {% generation %} tags, which mark the assistant's tokens for
        # training and which other Jinja renderers (llama.cpp's minja, llama-cpp-python) refuse
        writer.add_chat_template(GENERATION_TAGS.sub("", tokenizer.chat_template))
        end = tokenizer.convert_tokens_to_ids("<|im_end|>") if "<|im_end|>" in vocab else None
        if end is not None:
            writer.add_eot_token_id(end)  # where a turn ends: llama.cpp stops generating there
