"""HunyuanVideo 1.5, tiny and random, in the layout of the diffusers-format hub repos
(hunyuanvideo-community/HunyuanVideo-1.5-Diffusers-480p_t2v, ...-480p_i2v): a Qwen2.5-VL text model with its
Qwen2 tokenizer and chat template, a ByT5 glyph encoder, a `guider` (ClassifierFreeGuidance, which holds the
guidance scale), the 16x/4x causal VAE, and for image-to-video a SigLIP image encoder. Text-to-video and
image-to-video are separate checkpoints on the hub (the i2v transformer sees the image's SigLIP tokens).
"""

from __future__ import annotations

from pathlib import Path

import torch

from . import CORPUS, _save

# Qwen2-VL's chat template (the one Qwen2.5-VL-7B-Instruct ships), which the pipelines apply to every prompt.
QWEN_CHAT_TEMPLATE = (
    "{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}"
    "{% for message in messages %}{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n{% if message['content'] is string %}{{ message['content'] }}<|im_end|>\n"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "{% set image_count.value = image_count.value + 1 %}{% if add_vision_id %}Picture {{ image_count.value }}: "
    "{% endif %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'video' or 'video' in content %}{% set video_count.value = video_count.value + 1 %}"
    "{% if add_vision_id %}Video {{ video_count.value }}: {% endif %}<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n"
    "{% endif %}{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
QWEN_SPECIAL_TOKENS = ["<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>", "<|image_pad|>",
                       "<|video_pad|>"]


def _prompt_templates() -> list[str]:
    """The system prompts the HunyuanVideo 1.5 and Kandinsky 5 pipelines wrap every prompt in."""
    import inspect

    from diffusers import HunyuanVideo15Pipeline, Kandinsky5T2VPipeline

    hunyuan = inspect.signature(HunyuanVideo15Pipeline._get_mllm_prompt_embeds).parameters["system_message"].default
    kandinsky = Kandinsky5T2VPipeline(transformer=None, vae=None, text_encoder=None, tokenizer=None,
                                      text_encoder_2=None, tokenizer_2=None, scheduler=None).prompt_template
    return [hunyuan, kandinsky]


# Kandinsky 5's template is one token a word here but 128 tokens with Qwen's vocabulary (the crop the pipeline
# makes): three of its words ('\u0120' is BPE's space) lose their last merge to make up the difference.
_QWEN_SPLIT_WORDS = ("\u0120dynamism", "\u0120scren", "\u0120postprocessing")


def _qwen_tokenizer():
    """A Qwen2 byte-level BPE tokenizer (Qwen's pre-tokenizer regex, '<|endoftext|>' padding on the right, the
    chat markers as special tokens, Qwen2-VL's chat template) trained on CORPUS and the pipelines' system prompts,
    one token a word, so that the system prompt is as long as with Qwen's own: the pipelines crop that many
    hidden states (HunyuanVideo 1.5: 108, Kandinsky 5: 128) and keep the rest, the user's prompt."""
    import json

    from tokenizers import Regex, Tokenizer, models, pre_tokenizers, trainers
    from transformers import Qwen2Tokenizer
    from transformers.models.qwen2.tokenization_qwen2 import PRETOKENIZE_REGEX

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(PRETOKENIZE_REGEX), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    specials = ["<|endoftext|>", *QWEN_SPECIAL_TOKENS]
    tok.add_special_tokens(specials)
    trainer = trainers.BpeTrainer(vocab_size=2000, special_tokens=specials,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(CORPUS * 4 + _prompt_templates(), trainer)
    model = json.loads(tok.to_str())["model"]
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in model["merges"]]
    merges = [m for m in merges if "".join(m) not in _QWEN_SPLIT_WORDS]
    vocab = {t: i for t, i in model["vocab"].items() if t not in _QWEN_SPLIT_WORDS}
    vocab = {t: n for n, t in enumerate(sorted(vocab, key=vocab.get))}
    tokenizer = Qwen2Tokenizer(vocab=vocab, merges=merges, padding_side="right", model_max_length=131072)
    tokenizer.add_special_tokens({"additional_special_tokens": QWEN_SPECIAL_TOKENS})
    tokenizer.chat_template = QWEN_CHAT_TEMPLATE
    return tokenizer


def _components(*, i2v: bool, transformer_overrides: dict | None = None):
    from diffusers import AutoencoderKLHunyuanVideo15, FlowMatchEulerDiscreteScheduler, HunyuanVideo15Transformer3DModel
    from diffusers.guiders import ClassifierFreeGuidance
    from transformers import ByT5Tokenizer, Qwen2_5_VLTextConfig, Qwen2_5_VLTextModel, T5Config, T5EncoderModel

    tokenizer = _qwen_tokenizer()
    text_encoder = Qwen2_5_VLTextModel(Qwen2_5_VLTextConfig(
        vocab_size=len(tokenizer), hidden_size=16, intermediate_size=16, num_hidden_layers=3, num_attention_heads=2,
        num_key_value_heads=2, rope_parameters={"mrope_section": [1, 1, 2], "rope_type": "default",
                                                "rope_theta": 1000000.0},
        bos_token_id=None, eos_token_id=tokenizer.convert_tokens_to_ids("<|im_end|>"),
        pad_token_id=tokenizer.pad_token_id))
    # ByT5 (bytes, no training needed); the glyph encoder only runs on text in quotes, zeros otherwise
    tokenizer_2 = ByT5Tokenizer()
    text_encoder_2 = T5EncoderModel(T5Config(vocab_size=len(tokenizer_2), d_model=32, d_kv=8, d_ff=64, num_layers=2,
                                             num_heads=4, relative_attention_num_buckets=8,
                                             feed_forward_proj="gated-gelu", is_gated_act=True))
    # latent 4 channels; in = latents + image-condition latents + mask (2 * 4 + 1), as the hub's 65 = 2 * 32 + 1
    transformer = HunyuanVideo15Transformer3DModel(**{
        **dict(in_channels=9, out_channels=4, num_attention_heads=2, attention_head_dim=8, num_layers=2,
               num_refiner_layers=1, mlp_ratio=2.0, patch_size=1, patch_size_t=1, text_embed_dim=16,
               text_embed_2_dim=32, image_embed_dim=12, rope_axes_dim=(2, 2, 4), target_size=32,
               task_type="i2v" if i2v else "t2v"),
        **(transformer_overrides or {})})
    # the hub's ratios and depth: 16x spatial, 4x temporal over five levels
    vae = AutoencoderKLHunyuanVideo15(in_channels=3, out_channels=3, latent_channels=4,
                                      block_out_channels=(8, 8, 8, 8, 8), layers_per_block=1,
                                      spatial_compression_ratio=16, temporal_compression_ratio=4)
    scheduler = FlowMatchEulerDiscreteScheduler(shift=5.0)  # 480p's shift (720p: 9.0 t2v, 7.0 i2v)
    guider = ClassifierFreeGuidance(guidance_scale=6.0)
    return dict(text_encoder=text_encoder, tokenizer=tokenizer, transformer=transformer, vae=vae,
                scheduler=scheduler, text_encoder_2=text_encoder_2, tokenizer_2=tokenizer_2, guider=guider)


def hunyuanvideo15(folder: Path, *, transformer_overrides: dict | None = None) -> Path:
    """HunyuanVideo 1.5 text-to-video (HunyuanVideo15Pipeline); the benchmark passes a wider, deeper transformer."""
    from diffusers import HunyuanVideo15Pipeline

    torch.manual_seed(0)
    return _save(HunyuanVideo15Pipeline(**_components(i2v=False, transformer_overrides=transformer_overrides)),
                 folder)


def hunyuanvideo15_i2v(folder: Path) -> Path:
    """HunyuanVideo 1.5 image-to-video (HunyuanVideo15ImageToVideoPipeline): a SigLIP image encoder and its
    processor beside the text encoders (the hub's come from FLUX.1-Redux: 384 px, 729 tokens of 1152)."""
    from diffusers import HunyuanVideo15ImageToVideoPipeline
    from transformers import SiglipImageProcessor, SiglipVisionConfig, SiglipVisionModel

    torch.manual_seed(0)
    components = _components(i2v=True)
    image_encoder = SiglipVisionModel(SiglipVisionConfig(hidden_size=12, intermediate_size=16, num_hidden_layers=1,
                                                         num_attention_heads=2, image_size=32, patch_size=8))
    feature_extractor = SiglipImageProcessor(size={"height": 32, "width": 32})
    pipe = HunyuanVideo15ImageToVideoPipeline(**components, image_encoder=image_encoder,
                                              feature_extractor=feature_extractor)
    return _save(pipe, folder)
