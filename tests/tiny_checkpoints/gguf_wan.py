"""A Wan transformer as a GGUF file, as the shared Wan GGUFs are made: Wan's original key names, 2-D weights in
Q8_0 blocks (where a row is whole 32-value blocks), the rest F32."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

# diffusers' names -> Wan's original ones (the inverse of diffusers' convert_wan_transformer_to_diffusers)
ORIGINAL_NAMES = (
    ("condition_embedder.time_embedder.linear_1", "time_embedding.0"),
    ("condition_embedder.time_embedder.linear_2", "time_embedding.2"),
    ("condition_embedder.text_embedder.linear_1", "text_embedding.0"),
    ("condition_embedder.text_embedder.linear_2", "text_embedding.2"),
    ("condition_embedder.time_proj", "time_projection.1"),
    ("attn1", "self_attn"), ("attn2", "cross_attn"),
    (".to_out.0.", ".o."), (".to_q.", ".q."), (".to_k.", ".k."), (".to_v.", ".v."),
    ("ffn.net.0.proj", "ffn.0"), ("ffn.net.2", "ffn.2"), ("proj_out", "head.head"),
)


def original_name(name: str) -> str:
    for new, old in ORIGINAL_NAMES:
        name = name.replace(new, old)
    if name == "scale_shift_table":
        return "head.modulation"
    name = name.replace("scale_shift_table", "modulation")
    return re.sub(r"\.norm([23])\.", lambda m: f".norm{5 - int(m[1])}.", name)  # diffusers swaps norm2 and norm3


def write_gguf(transformer, path: Path) -> dict:
    """Writes the transformer's weights to `path`; returns the weights as the file holds them, dequantised, under
    diffusers' names (what a render from the file must equal)."""
    import gguf
    import torch

    writer = gguf.GGUFWriter(str(path), arch="wan")
    held = {}
    for name, tensor in transformer.state_dict().items():
        values = tensor.detach().float().numpy()
        if values.ndim == 2 and values.shape[-1] % 32 == 0:
            data = gguf.quants.quantize(values, gguf.GGMLQuantizationType.Q8_0)
            writer.add_tensor(original_name(name), data, raw_dtype=gguf.GGMLQuantizationType.Q8_0)
            values = gguf.quants.dequantize(data, gguf.GGMLQuantizationType.Q8_0).reshape(values.shape)
        else:
            writer.add_tensor(original_name(name), values.astype(np.float32))
        held[name] = torch.from_numpy(np.ascontiguousarray(values))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return held
