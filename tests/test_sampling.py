import itertools

import pytest
import torch

from llada_cot.sampling import SamplerConfig, encode_prompts, generate, transfer_counts

PROMPTS = ["What is 3 + 4?", "Tom has 5 apples. He buys 3 more. How many apples does Tom have now?"]


class NoMaskPrediction(torch.nn.Module):
    """Wrap a model so the mask id is never its argmax (the official loop does not exclude it)."""

    def __init__(self, model, mask_id):
        super().__init__()
        self.model, self.mask_id = model, mask_id

    def forward(self, input_ids, attention_mask=None):
        output = self.model(input_ids=input_ids, attention_mask=attention_mask)
        output.logits[..., self.mask_id] = -1e4
        return output


class FavoursMask(torch.nn.Module):
    """A model whose most likely token is always the mask id."""

    def __init__(self, model, mask_id):
        super().__init__()
        self.model, self.mask_id = model, mask_id

    def forward(self, input_ids, attention_mask=None):
        output = self.model(input_ids=input_ids, attention_mask=attention_mask)
        output.logits[..., self.mask_id] = 1e4
        return output


def reference_generate(model, prompt, attention_mask, steps, gen_length, block_length, cfg_scale, mask_id):
    """The official LLaDA loop, written from its description: returns final ids and commit order."""
    batch, prompt_length = prompt.shape
    x = torch.full((batch, prompt_length + gen_length), mask_id, dtype=torch.long)
    x[:, :prompt_length] = prompt
    full_mask = torch.cat([attention_mask, torch.ones(batch, gen_length, dtype=torch.long)], dim=1)
    prompt_index = x != mask_id
    num_blocks = gen_length // block_length
    steps_per_block = steps // num_blocks
    order = []
    for block in range(num_blocks):
        start = prompt_length + block * block_length
        end = start + block_length
        masked_count = (x[:, start:end] == mask_id).sum(dim=1)
        counts = [[int(m) // steps_per_block + (1 if j < int(m) % steps_per_block else 0)
                   for j in range(steps_per_block)] for m in masked_count]
        for i in range(steps_per_block):
            mask_index = x == mask_id
            with torch.no_grad():
                if cfg_scale > 0:
                    unconditional = x.clone()
                    unconditional[prompt_index] = mask_id
                    both = model(torch.cat([x, unconditional]), attention_mask=torch.cat([full_mask, full_mask])).logits
                    conditional, uncond = both.chunk(2)
                    logits = uncond + (cfg_scale + 1) * (conditional - uncond)
                else:
                    logits = model(x, attention_mask=full_mask).logits
            predicted = logits.argmax(dim=-1)
            probability = torch.gather(torch.softmax(logits.float(), dim=-1), -1, predicted[..., None]).squeeze(-1)
            probability[:, end:] = -torch.inf
            predicted = torch.where(mask_index, predicted, x)
            confidence = torch.where(mask_index, probability, torch.tensor(-torch.inf))
            step_commits = []
            for row in range(batch):
                if counts[row][i] == 0:
                    step_commits.append([])
                    continue
                chosen = confidence[row].topk(counts[row][i]).indices
                x[row, chosen] = predicted[row, chosen]
                step_commits.append(sorted((chosen - prompt_length).tolist()))
            order.append(step_commits)
    return x[:, prompt_length:], order


def committed_positions(result):
    return [[sorted(rows) for rows in event.positions] for event in result.trajectory.steps]


@pytest.mark.parametrize("steps,gen_length,block_length,cfg_scale", [
    (16, 16, 16, 0.0),
    (16, 32, 8, 0.0),
    (8, 32, 8, 0.0),
    (16, 32, 16, 1.5),
    (32, 24, 12, 0.0),
])
def test_matches_official_loop_at_temperature_zero(random_loaded, steps, gen_length, block_length, cfg_scale):
    ids = random_loaded.ids
    model = NoMaskPrediction(random_loaded.model, ids.mask)
    prompt, attention_mask = encode_prompts(random_loaded.tokenizer, PROMPTS, ids)
    config = SamplerConfig(gen_length=gen_length, steps=steps, block_length=block_length, cfg_scale=cfg_scale)
    result = generate(model, prompt, ids, config, attention_mask=attention_mask)
    expected_tokens, expected_order = reference_generate(model, prompt, attention_mask, steps, gen_length,
                                                         block_length, cfg_scale, ids.mask)
    assert torch.equal(result.tokens, expected_tokens)
    # Steps that commit nothing in any row are skipped, so compare the non-empty steps.
    expected_nonempty = [step for step in expected_order if any(step)]
    assert committed_positions(result) == expected_nonempty


def test_transfer_counts_are_linear_and_sum_to_masked():
    counts = transfer_counts(torch.tensor([10, 3, 0]), steps=4)
    assert counts.tolist() == [[3, 3, 2, 2], [1, 1, 1, 0], [0, 0, 0, 0]]


@pytest.mark.parametrize("gen_length,block_length,steps", [
    (100, 32, 100), (100, 32, 7), (256, 32, 8), (64, 64, 1), (48, 16, 5), (30, 7, 30), (17, 17, 3),
])
def test_every_position_committed_exactly_once(random_loaded, gen_length, block_length, steps):
    ids = random_loaded.ids
    prompt, attention_mask = encode_prompts(random_loaded.tokenizer, PROMPTS, ids)
    config = SamplerConfig(gen_length=gen_length, steps=steps, block_length=block_length)
    result = generate(random_loaded.model, prompt, ids, config, attention_mask=attention_mask)
    assert result.tokens.shape == (len(PROMPTS), gen_length)
    assert not (result.tokens == ids.mask).any()
    for row in range(len(PROMPTS)):
        positions = sorted(itertools.chain.from_iterable(event.positions[row] for event in result.trajectory.steps))
        assert positions == list(range(gen_length))


def test_trajectory_tokens_rebuild_the_output(random_loaded):
    ids = random_loaded.ids
    prompt, attention_mask = encode_prompts(random_loaded.tokenizer, PROMPTS[:1], ids)
    result = generate(random_loaded.model, prompt, ids, SamplerConfig(gen_length=32, steps=16, block_length=8),
                      attention_mask=attention_mask)
    rebuilt = [ids.mask] * 32
    for event in result.trajectory.steps:
        for position, token in zip(event.positions[0], event.token_ids[0]):
            rebuilt[position] = token
    assert rebuilt == result.tokens[0].tolist()
    assert result.nfe == len(result.trajectory.steps)
    assert [event.nfe for event in result.trajectory.steps] == list(range(1, result.nfe + 1))


def test_cfg_counts_two_forward_passes_per_step(random_loaded):
    ids = random_loaded.ids
    prompt, attention_mask = encode_prompts(random_loaded.tokenizer, PROMPTS[:1], ids)
    result = generate(random_loaded.model, prompt, ids,
                      SamplerConfig(gen_length=16, steps=8, block_length=16, cfg_scale=1.0),
                      attention_mask=attention_mask)
    assert result.nfe == 2 * len(result.trajectory.steps)


@pytest.mark.parametrize("temperature", [0.0, 0.8])
def test_mask_token_is_never_committed(random_loaded, temperature):
    ids = random_loaded.ids
    model = FavoursMask(random_loaded.model, ids.mask)
    prompt, attention_mask = encode_prompts(random_loaded.tokenizer, PROMPTS, ids)
    config = SamplerConfig(gen_length=24, steps=12, block_length=8, temperature=temperature, seed=1)
    result = generate(model, prompt, ids, config, attention_mask=attention_mask)
    assert not (result.tokens == ids.mask).any()
    for event in result.trajectory.steps:
        for row_tokens in event.token_ids:
            assert ids.mask not in row_tokens


def test_batch_equals_single_at_temperature_zero(random_loaded):
    ids = random_loaded.ids
    config = SamplerConfig(gen_length=32, steps=32, block_length=8)
    short, long = PROMPTS[0], PROMPTS[1]
    alone_ids, alone_mask = encode_prompts(random_loaded.tokenizer, [short], ids)
    batch_ids, batch_mask = encode_prompts(random_loaded.tokenizer, [short, long], ids)
    assert batch_ids.shape[1] > alone_ids.shape[1]  # the short prompt really is left-padded
    alone = generate(random_loaded.model, alone_ids, ids, config, attention_mask=alone_mask)
    batched = generate(random_loaded.model, batch_ids, ids, config, attention_mask=batch_mask)
    assert torch.equal(batched.tokens[0], alone.tokens[0])


def test_same_seed_gives_same_sample(random_loaded):
    ids = random_loaded.ids
    prompt, attention_mask = encode_prompts(random_loaded.tokenizer, PROMPTS[:1], ids)
    config = SamplerConfig(gen_length=24, steps=24, block_length=8, temperature=1.0, remasking="random", seed=7)
    first = generate(random_loaded.model, prompt, ids, config, attention_mask=attention_mask)
    second = generate(random_loaded.model, prompt, ids, config, attention_mask=attention_mask)
    other = generate(random_loaded.model, prompt, ids, SamplerConfig(**{**config.__dict__, "seed": 8}),
                     attention_mask=attention_mask)
    assert torch.equal(first.tokens, second.tokens)
    assert not torch.equal(first.tokens, other.tokens)


def test_stop_ends_within_one_step(random_loaded):
    ids = random_loaded.ids
    prompt, attention_mask = encode_prompts(random_loaded.tokenizer, PROMPTS[:1], ids)
    seen = []
    result = generate(random_loaded.model, prompt, ids, SamplerConfig(gen_length=32, steps=32, block_length=8),
                      attention_mask=attention_mask, on_step=lambda event, x: seen.append(event.step),
                      should_stop=lambda: len(seen) >= 3)
    assert result.stopped
    assert len(result.trajectory.steps) == 3
    assert (result.tokens == ids.mask).sum() == 32 - 3


@pytest.mark.parametrize("changes,message", [
    ({"steps": 0}, "steps"),
    ({"gen_length": -4}, "gen_length"),
    ({"block_length": 64, "gen_length": 32}, "block_length"),
    ({"temperature": -0.1}, "temperature"),
    ({"temperature": float("nan")}, "temperature"),
    ({"cfg_scale": -1.0}, "cfg_scale"),
    ({"remasking": "lowest"}, "remasking"),
    ({"steps": 2.5}, "steps"),
    ({"seed": "abc"}, "seed"),
])
def test_invalid_settings_raise_value_error(changes, message):
    with pytest.raises(ValueError, match=message):
        SamplerConfig(**{**SamplerConfig().__dict__, **changes}).validate()


def test_length_not_divisible_by_block_is_noted():
    config = SamplerConfig(gen_length=100, block_length=32, steps=100).validate()
    assert [end - start for start, end in config.block_bounds()] == [32, 32, 32, 4]
    assert any("last block has 4" in note for note in config.notes)


def test_fewer_steps_than_blocks_is_noted():
    config = SamplerConfig(gen_length=256, block_length=32, steps=4).validate()
    assert config.steps_per_block() == [1] * 8
    assert any("fewer than the 8 blocks" in note for note in config.notes)


def test_many_tokens_per_step_is_warned():
    config = SamplerConfig(gen_length=256, block_length=32, steps=8).validate()
    assert any("About 32 tokens are committed per step" in note for note in config.notes)
