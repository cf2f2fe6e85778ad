"""The block key/value cache: exact at the pass that fills it, cheaper afterwards."""

import pytest
import torch

from llada_cot.modeling_llada import LLaDAConfig, LLaDAModelLM
from llada_cot.sampling import SamplerConfig, encode_prompts, generate

from conftest import random_model

PROMPTS = ["What is 3 + 4?", "Tom has 5 apples. He buys 3 more. How many apples does Tom have now?"]
LENGTH, BLOCK = 24, (12, 18)  # sequence length and the block's (start, end)


def sequences(tokenizer, padded: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Return two random rows of LENGTH tokens; with `padded`, row 0 starts with 5 padding tokens."""
    generator = torch.Generator().manual_seed(0)
    input_ids = torch.randint(5, len(tokenizer), (2, LENGTH), generator=generator)
    if not padded:
        return input_ids, None
    attention_mask = torch.ones(2, LENGTH, dtype=torch.long)
    attention_mask[0, :5] = 0
    input_ids[0, :5] = tokenizer.pad_token_id
    return input_ids, attention_mask


def span_for(mode: str) -> tuple[int, int]:
    return (BLOCK[0], LENGTH) if mode == "prefix" else BLOCK


@pytest.fixture(scope="module", params=[None, 2], ids=["mha", "gqa"])
def model(request, tokenizer):
    return random_model(tokenizer, n_heads=4, n_kv_heads=request.param)


@pytest.mark.parametrize("mode", ["prefix", "dual"])
@pytest.mark.parametrize("padded", [False, True], ids=["unpadded", "padded"])
def test_fill_pass_equals_plain_forward(model, tokenizer, mode, padded):
    input_ids, attention_mask = sequences(tokenizer, padded)
    plain = model(input_ids, attention_mask=attention_mask).logits
    filled = model(input_ids, attention_mask=attention_mask, cache_span=span_for(mode))
    torch.testing.assert_close(filled.logits, plain)


@pytest.mark.parametrize("mode", ["prefix", "dual"])
@pytest.mark.parametrize("padded", [False, True], ids=["unpadded", "padded"])
def test_span_pass_equals_full_forward_at_fill(model, tokenizer, mode, padded):
    input_ids, attention_mask = sequences(tokenizer, padded)
    start, end = span_for(mode)
    full = model(input_ids, attention_mask=attention_mask).logits
    cache = model(input_ids, attention_mask=attention_mask, cache_span=(start, end)).block_cache
    span = model(input_ids[:, start:end], block_cache=cache).logits
    assert span.shape == (2, end - start, len(tokenizer))
    torch.testing.assert_close(span, full[:, start:end])


@pytest.mark.parametrize("mode", ["prefix", "dual"])
def test_cache_keeps_only_positions_outside_span(model, tokenizer, mode):
    input_ids, attention_mask = sequences(tokenizer, padded=True)
    start, end = span_for(mode)
    cache = model(input_ids, attention_mask=attention_mask, cache_span=(start, end)).block_cache
    config = model.config
    expected = (2, config.n_kv_heads, LENGTH - (end - start), config.head_dim)
    assert len(cache.keys) == len(cache.values) == config.n_layers
    assert all(keys.shape == expected for keys in cache.keys)
    assert all(values.shape == expected for values in cache.values)


def test_cached_padding_stays_hidden(model, tokenizer):
    input_ids, attention_mask = sequences(tokenizer, padded=True)
    other_padding = input_ids.clone()
    other_padding[0, :5] = 7  # different tokens under the same zero mask
    results = []
    for ids in (input_ids, other_padding):
        cache = model(ids, attention_mask=attention_mask, cache_span=BLOCK).block_cache
        results.append(model(ids[:, BLOCK[0]:BLOCK[1]], block_cache=cache).logits)
    torch.testing.assert_close(results[0], results[1])


def test_span_pass_uses_absolute_positions(model, tokenizer):
    input_ids, attention_mask = sequences(tokenizer, padded=True)
    alone = input_ids[:1, 5:]  # row 0 without its padding: every position shifts left by 5
    start, end = BLOCK[0] - 5, BLOCK[1] - 5
    cache = model(alone, cache_span=(start, end)).block_cache
    expected = model(alone[:, start:end], block_cache=cache).logits[0]
    padded_cache = model(input_ids, attention_mask=attention_mask, cache_span=BLOCK).block_cache
    padded = model(input_ids[:, BLOCK[0]:BLOCK[1]], block_cache=padded_cache).logits[0]
    torch.testing.assert_close(padded, expected, atol=1e-5, rtol=1e-5)


def test_cache_holds_both_cfg_halves(model, tokenizer):
    input_ids, attention_mask = sequences(tokenizer, padded=True)
    unconditional = input_ids.clone()
    unconditional[:, :BLOCK[0]] = tokenizer.mask_token_id
    both = torch.cat([input_ids, unconditional])
    both_mask = torch.cat([attention_mask, attention_mask])
    full = model(both, attention_mask=both_mask).logits
    cache = model(both, attention_mask=both_mask, cache_span=BLOCK).block_cache
    assert cache.keys[0].shape[0] == 4
    span = model(both[:, BLOCK[0]:BLOCK[1]], block_cache=cache).logits
    torch.testing.assert_close(span, full[:, BLOCK[0]:BLOCK[1]])


def test_8b_shape_runs_with_cache():
    config = LLaDAConfig(n_layers=2)  # the 8B defaults, with fewer layers, on the meta device
    with torch.device("meta"):
        model = LLaDAModelLM(config).eval()
        input_ids = torch.zeros(2, 300, dtype=torch.long)
        filled = model(input_ids, attention_mask=torch.ones(2, 300, dtype=torch.long), cache_span=(200, 232))
        span = model(input_ids[:, 200:232], block_cache=filled.block_cache)
    assert filled.block_cache.keys[0].shape == (2, 32, 268, 128)
    assert span.logits.shape == (2, 32, 126464)


@pytest.mark.parametrize("arguments,message", [
    ({"cache_span": (4, 2)}, "cache_span"),
    ({"cache_span": (0, LENGTH + 1)}, "cache_span"),
])
def test_bad_cache_span_raises(model, tokenizer, arguments, message):
    input_ids, _ = sequences(tokenizer, padded=False)
    with pytest.raises(ValueError, match=message):
        model(input_ids, **arguments)


def test_span_pass_checks_its_input(model, tokenizer):
    input_ids, attention_mask = sequences(tokenizer, padded=True)
    cache = model(input_ids, attention_mask=attention_mask, cache_span=BLOCK).block_cache
    span_ids = input_ids[:, BLOCK[0]:BLOCK[1]]
    with pytest.raises(ValueError, match="shape"):
        model(input_ids, block_cache=cache)
    with pytest.raises(ValueError, match="attention_mask"):
        model(span_ids, attention_mask=attention_mask, block_cache=cache)
    with pytest.raises(ValueError, match="not both"):
        model(span_ids, cache_span=BLOCK, block_cache=cache)


@pytest.mark.parametrize("cache", ["prefix", "dual"])
@pytest.mark.parametrize("cfg_scale", [0.0, 1.5])
def test_one_step_per_block_matches_no_cache(random_loaded, cache, cfg_scale):
    # With one step per block every pass fills the cache, and a filling pass is a plain forward.
    ids = random_loaded.ids
    prompt, attention_mask = encode_prompts(random_loaded.tokenizer, PROMPTS, ids)
    config = SamplerConfig(gen_length=24, steps=3, block_length=8, cfg_scale=cfg_scale)
    plain = generate(random_loaded.model, prompt, ids, config, attention_mask=attention_mask)
    cached = generate(random_loaded.model, prompt, ids, SamplerConfig(**{**config.__dict__, "cache": cache}),
                      attention_mask=attention_mask)
    assert torch.equal(cached.tokens, plain.tokens)


def test_first_step_of_each_block_matches_no_cache(random_loaded):
    ids = random_loaded.ids
    prompt, attention_mask = encode_prompts(random_loaded.tokenizer, PROMPTS, ids)
    config = SamplerConfig(gen_length=24, steps=12, block_length=8)
    first_steps = {}
    for cache in ("none", "prefix", "dual"):
        result = generate(random_loaded.model, prompt, ids, SamplerConfig(**{**config.__dict__, "cache": cache}),
                          attention_mask=attention_mask)
        first_steps[cache] = result.trajectory.steps[0]
    assert first_steps["prefix"].confidences == first_steps["none"].confidences
    assert first_steps["dual"].confidences == first_steps["none"].confidences


@pytest.mark.parametrize("cfg_scale", [0.0, 1.0])
def test_cache_cuts_forward_positions(random_loaded, cfg_scale):
    ids = random_loaded.ids
    prompt, attention_mask = encode_prompts(random_loaded.tokenizer, PROMPTS, ids)
    prompt_length, blocks, block_steps, block = prompt.shape[1], 4, 4, 8
    length = prompt_length + blocks * block
    passes = 2 if cfg_scale > 0 else 1
    results = {}
    for cache in ("none", "prefix", "dual"):
        config = SamplerConfig(gen_length=blocks * block, steps=blocks * block_steps, block_length=block,
                               cfg_scale=cfg_scale, cache=cache)
        results[cache] = generate(random_loaded.model, prompt, ids, config, attention_mask=attention_mask)
        assert not (results[cache].tokens == ids.mask).any()
    assert results["none"].nfe == results["prefix"].nfe == results["dual"].nfe == passes * blocks * block_steps
    assert results["none"].forward_positions == passes * blocks * block_steps * length
    # Later steps run from the block start to the end (prefix) or the block only (dual).
    prefix_later = sum(length - (prompt_length + b * block) for b in range(blocks)) * (block_steps - 1)
    assert results["prefix"].forward_positions == passes * (blocks * length + prefix_later)
    assert results["dual"].forward_positions == passes * blocks * (length + (block_steps - 1) * block)


def test_model_without_cache_support_is_rejected(random_loaded):
    ids = random_loaded.ids

    class NoCache(torch.nn.Module):
        def forward(self, input_ids, attention_mask=None, **ignored):
            return random_loaded.model(input_ids=input_ids, attention_mask=attention_mask)

    prompt, attention_mask = encode_prompts(random_loaded.tokenizer, PROMPTS, ids)
    config = SamplerConfig(gen_length=16, steps=8, block_length=8, cache="dual")
    with pytest.raises(ValueError, match="BlockCache"):
        generate(NoCache(), prompt, ids, config, attention_mask=attention_mask)


def test_cache_notes_name_the_approximation():
    prefix = SamplerConfig(cache="prefix").validate().notes
    dual = SamplerConfig(cache="dual").validate().notes
    assert any("prefix cache is an approximation" in note for note in prefix)
    assert not any("dual cache" in note for note in prefix)
    assert any("dual cache" in note for note in dual)
