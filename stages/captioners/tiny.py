"""Tiny randomly initialised VLM checkpoints (BLIP, Qwen2-VL, Florence-2), built offline, for tests, benchmarks, smoke runs.

It exercises the real ``transformers`` loading and generation path of the captioner on a machine that
has no downloaded weights. Its captions are random words; two output biases make them predictable
in length: the special tokens other than [SEP] can never be emitted (so a caption is words, not
markup), and [SEP] (end of sequence) is strongly preferred, so generation stops as soon as
``min_new_tokens`` allows. With ``min_new_tokens: 0`` every caption is empty, which the stage rejects.
"""
from __future__ import annotations

from pathlib import Path

SPECIAL = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "[DEC]")
WORDS = (
    "a an the of on in at with and picture photo dog cat person car box disc star red blue green grey white "
    "black brown small large shadow left right top bottom centre beach table floor wall street grass sitting"
).split()


def build_tiny_blip(path: str | Path, image_size: int = 32, seed: int = 0) -> Path:
    """Save a tiny BLIP (model, processor, tokenizer) to ``path`` and return it."""
    import torch
    from transformers import BertTokenizer, BlipConfig, BlipForConditionalGeneration, BlipImageProcessor, BlipProcessor

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    vocab = {token: i for i, token in enumerate(SPECIAL + tuple(WORDS))}
    tokenizer = BertTokenizer(vocab=vocab, bos_token="[DEC]")
    ids = {t: vocab[t] for t in SPECIAL}
    width = 32
    config = BlipConfig(
        text_config=dict(vocab_size=len(vocab), hidden_size=width, encoder_hidden_size=width, intermediate_size=2 * width,
                         num_hidden_layers=2, num_attention_heads=2, max_position_embeddings=128,
                         bos_token_id=ids["[DEC]"], eos_token_id=ids["[SEP]"], sep_token_id=ids["[SEP]"],
                         pad_token_id=ids["[PAD]"], initializer_range=0.2),
        vision_config=dict(hidden_size=width, intermediate_size=2 * width, num_hidden_layers=2, num_attention_heads=2,
                           image_size=image_size, patch_size=8, projection_dim=width,
                           initializer_range=0.02),  # the default (1e-10) makes every image look alike
        projection_dim=width,
    )
    torch.manual_seed(seed)
    model = BlipForConditionalGeneration(config).eval()
    with torch.no_grad():
        bias = model.text_decoder.cls.predictions.bias
        bias[[ids[t] for t in SPECIAL if t != "[SEP]"]] = -1e4
        bias[ids["[SEP]"]] = 50.0
    processor = BlipProcessor(image_processor=BlipImageProcessor(size={"height": image_size, "width": image_size}),
                              tokenizer=tokenizer)
    model.save_pretrained(path)
    processor.save_pretrained(path)
    return path


#: a Qwen2-VL style chat template: one user turn with an image entry, then the assistant's turn
QWEN_CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{% if message['content'] is string %}"
    "{{ message['content'] }}{% else %}{% for content in message['content'] %}{% if content['type'] == 'image' %}"
    "<|vision_start|><|image_pad|><|vision_end|>{% elif content['type'] == 'text' %}{{ content['text'] }}{% endif %}"
    "{% endfor %}{% endif %}<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
QWEN_SPECIAL = ("<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>",
                "<|image_pad|>", "<|video_pad|>")


def build_tiny_qwen2_vl(path: str | Path, seed: int = 0) -> Path:
    """Save a tiny Qwen2-VL (chat template, byte-level BPE tokenizer, dynamic-resolution image processor).

    The checkpoint's generation config suppresses every token but the words (end of sequence too), so
    each caption is exactly ``max_new_tokens`` words: the chat path's output is checkable, not markup.
    """
    import torch
    from transformers import (
        Qwen2Tokenizer,
        Qwen2VLConfig,
        Qwen2VLForConditionalGeneration,
        Qwen2VLImageProcessor,
        Qwen2VLProcessor,
        Qwen2VLVideoProcessor,
    )
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    byte_chars = sorted(set(bytes_to_unicode().values()))  # every byte is a token: any prompt tokenizes
    words = [f"\u0120{w}" for w in WORDS]  # "Ġdog" decodes to " dog"
    tokenizer = Qwen2Tokenizer(vocab={t: i for i, t in enumerate(byte_chars + words)}, merges=[])
    tokenizer.add_special_tokens({"additional_special_tokens": list(QWEN_SPECIAL[1:])})
    ids = dict(zip(QWEN_SPECIAL, tokenizer.convert_tokens_to_ids(list(QWEN_SPECIAL))))
    width = 32
    config = Qwen2VLConfig(
        text_config=dict(vocab_size=len(tokenizer), hidden_size=width, intermediate_size=2 * width, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=1024,
                         bos_token_id=ids["<|endoftext|>"], eos_token_id=ids["<|im_end|>"],
                         pad_token_id=ids["<|endoftext|>"], initializer_range=0.2,
                         rope_parameters={"rope_type": "default", "mrope_section": [2, 3, 3], "rope_theta": 10000.0}),
        vision_config=dict(depth=1, embed_dim=width, hidden_size=width, num_heads=2, mlp_ratio=2, patch_size=14,
                           spatial_merge_size=2, temporal_patch_size=2, initializer_range=0.2),
        image_token_id=ids["<|image_pad|>"], video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"], vision_end_token_id=ids["<|vision_end|>"],
    )
    torch.manual_seed(seed)
    model = Qwen2VLForConditionalGeneration(config).eval()
    word_ids = set(tokenizer.convert_tokens_to_ids(words))
    model.generation_config.suppress_tokens = [i for i in range(len(tokenizer)) if i not in word_ids]
    image_processor = Qwen2VLImageProcessor(size={"shortest_edge": 56 * 56, "longest_edge": 112 * 112},
                                            patch_size=14, merge_size=2, temporal_patch_size=2)
    processor = Qwen2VLProcessor(image_processor=image_processor, tokenizer=tokenizer,
                                 video_processor=Qwen2VLVideoProcessor(), chat_template=QWEN_CHAT_TEMPLATE)
    model.save_pretrained(path)
    processor.save_pretrained(path)
    return path


def build_tiny_florence2(path: str | Path, seed: int = 0) -> Path:
    """Save a tiny Florence-2 (encoder-decoder: DaViT vision tower, BART text model, byte-level BPE tokenizer).

    Like the tiny Qwen2-VL, its generation config allows only the words, so each caption is exactly
    ``max_new_tokens`` words.
    """
    import torch
    from transformers import BartTokenizer, CLIPImageProcessor, Florence2Config, Florence2ForConditionalGeneration, Florence2Processor
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    special = ["<s>", "<pad>", "</s>", "<unk>"]
    words = [f"\u0120{w}" for w in WORDS]
    vocab = {t: i for i, t in enumerate(special + sorted(set(bytes_to_unicode().values())) + words)}
    tokenizer = BartTokenizer(vocab=vocab, merges=[], extra_special_tokens={"image_token": "<image>"})
    tokenizer.add_special_tokens({"mask_token": "<mask>"})
    width = 32
    config = Florence2Config(
        text_config=dict(model_type="bart", vocab_size=len(tokenizer), d_model=width, encoder_layers=1, decoder_layers=1,
                         encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=2 * width,
                         decoder_ffn_dim=2 * width, max_position_embeddings=128, bos_token_id=0, pad_token_id=1,
                         eos_token_id=2, decoder_start_token_id=2, forced_eos_token_id=None, init_std=0.2),
        vision_config=dict(depths=(1, 1, 1, 1), embed_dim=(8, 16, width, width), num_heads=(1, 2, 2, 2),
                           num_groups=(1, 2, 2, 2), window_size=2, projection_dim=width, drop_path_rate=0.0,
                           initializer_range=0.2),  # larger than default: the image must move the words
        image_token_id=tokenizer.image_token_id,
    )
    torch.manual_seed(seed)
    model = Florence2ForConditionalGeneration(config).eval()
    word_ids = set(tokenizer.convert_tokens_to_ids(words))
    model.generation_config.suppress_tokens = [i for i in range(len(tokenizer)) if i not in word_ids]
    # 64 px through the DaViT strides (4·2·2·2) gives 2×2 patches, plus the pooled token: 5 image tokens
    image_processor = CLIPImageProcessor(size={"height": 64, "width": 64}, do_center_crop=False, image_seq_length=5)
    Florence2Processor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(path)
    model.save_pretrained(path)
    return path


if __name__ == "__main__":  # python -m stages.captioners.tiny {blip|qwen2_vl|florence2} DIR: a checkpoint to smoke-test a run with
    import sys

    kind, out = sys.argv[1], sys.argv[2]
    print({"blip": build_tiny_blip, "qwen2_vl": build_tiny_qwen2_vl, "florence2": build_tiny_florence2}[kind](out))
