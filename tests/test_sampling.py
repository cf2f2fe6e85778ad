import dataclasses
import itertools
from types import SimpleNamespace

import pytest
import torch

from llada_cot.sampling import (
    EARLY_STOP_PROBABILITY, REMASKING_RULES, SamplerConfig, constraint_tokens, encode_prompts, generate,
    iter_denoising, parse_constraints, transfer_counts,
)

PROMPTS = ["What is 3 + 4?", "Tom has 5 apples. He buys 3 more. How many apples does Tom have now?"]
THREE_PROMPTS = PROMPTS + ["Sam has 12 coins. He loses 7. How many coins does Sam have now?"]


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


class EOSBonus(torch.nn.Module):
    """Make end-of-text the most likely token everywhere: its logit becomes the row maximum plus `bonus`."""

    def __init__(self, model, eos_id, bonus):
        super().__init__()
        self.model, self.eos_id, self.bonus = model, eos_id, bonus

    def forward(self, input_ids, attention_mask=None, **cache_arguments):
        output = self.model(input_ids=input_ids, attention_mask=attention_mask, **cache_arguments)
        output.logits[..., self.eos_id] = output.logits.max(dim=-1).values + self.bonus
        return output


class ScriptedLogits(torch.nn.Module):
    """Return fixed logits for the generated region, whatever the input: table (B, G, V) or (G, V)."""

    def __init__(self, table):
        super().__init__()
        self.table = table

    def forward(self, input_ids, attention_mask=None):
        batch, length = input_ids.shape
        table = self.table.expand(batch, *self.table.shape[-2:])
        prompt = torch.zeros(batch, length - table.shape[1], table.shape[2])
        return SimpleNamespace(logits=torch.cat([prompt, table], dim=1))


def scripted_table(rows, vocab_size, first_token=10):
    """Build logits whose softmax gives each position the listed probabilities for tokens first_token, +1, ..."""
    table = torch.full((len(rows), vocab_size), -1e9)
    for position, probabilities in enumerate(rows):
        for index, probability in enumerate(probabilities):
            table[position, first_token + index] = torch.tensor(probability).log()
    return table


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
    (24, 48, 16, 2.0),
    (6, 24, 8, 0.5),
])
@pytest.mark.parametrize("prompts", [PROMPTS, THREE_PROMPTS], ids=["two", "three"])
def test_matches_official_loop_at_temperature_zero(random_loaded, steps, gen_length, block_length, cfg_scale,
                                                   prompts):
    ids = random_loaded.ids
    model = NoMaskPrediction(random_loaded.model, ids.mask)
    prompt, attention_mask = encode_prompts(random_loaded.tokenizer, prompts, ids)
    assert (attention_mask == 0).any()  # the batch really is left-padded
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


def reference_threshold_generate(model, prompt, attention_mask, gen_length, block_length, threshold, mask_id):
    """Threshold decoding written from its description, one full forward pass per step."""
    batch, prompt_length = prompt.shape
    x = torch.full((batch, prompt_length + gen_length), mask_id, dtype=torch.long)
    x[:, :prompt_length] = prompt
    full_mask = torch.cat([attention_mask, torch.ones(batch, gen_length, dtype=torch.long)], dim=1)
    nfe = 0
    for start in range(prompt_length, prompt_length + gen_length, block_length):
        end = min(start + block_length, prompt_length + gen_length)
        while (x[:, start:end] == mask_id).any():
            with torch.no_grad():
                logits = model(x, attention_mask=full_mask).logits[:, start:end]
            nfe += 1
            probabilities = torch.softmax(logits.float(), dim=-1)
            confidence, predicted = probabilities.max(dim=-1)
            for row in range(batch):
                masked = x[row, start:end] == mask_id
                if not masked.any():
                    continue
                row_confidence = torch.where(masked, confidence[row], torch.tensor(-1.0))
                chosen = masked & (row_confidence > threshold)
                chosen[row_confidence.argmax()] = True
                x[row, start:end] = torch.where(chosen, predicted[row], x[row, start:end])
    return x[:, prompt_length:], nfe


@pytest.mark.parametrize("threshold,block_length", [(0.9, 8), (0.05, 16), (0.2, 12)])
def test_threshold_matches_reference_loop(random_loaded, threshold, block_length):
    ids = random_loaded.ids
    model = NoMaskPrediction(random_loaded.model, ids.mask)
    prompt, attention_mask = encode_prompts(random_loaded.tokenizer, THREE_PROMPTS, ids)
    config = SamplerConfig(gen_length=24, steps=24, block_length=block_length, threshold=threshold)
    result = generate(model, prompt, ids, config, attention_mask=attention_mask)
    expected_tokens, expected_nfe = reference_threshold_generate(model, prompt, attention_mask, 24, block_length,
                                                                 threshold, ids.mask)
    assert torch.equal(result.tokens, expected_tokens)
    assert result.nfe == expected_nfe


@pytest.mark.parametrize("rule", REMASKING_RULES)
def test_threshold_compares_predicted_probability(tokenizer, random_loaded, rule):
    # Probabilities of each position's top tokens; 0.95 and 0.92 pass 0.9 whatever the ranking rule.
    rows = [[0.5, 0.25, 0.25], [0.95, 0.05], [0.3, 0.3, 0.4], [0.92, 0.08]]
    model = ScriptedLogits(scripted_table(rows, len(tokenizer)))
    prompt, attention_mask = encode_prompts(tokenizer, PROMPTS[:1], random_loaded.ids)
    config = SamplerConfig(gen_length=4, steps=4, block_length=4, threshold=0.9, remasking=rule, seed=0)
    result = generate(model, prompt, random_loaded.ids, config, attention_mask=attention_mask)
    assert result.trajectory.steps[0].positions[0] == [1, 3]
    assert result.nfe == 3  # then one position per step: nothing else passes 0.9


@pytest.mark.parametrize("rule,first", [("low_confidence", 1), ("margin", 2), ("entropy", 0)])
def test_rules_rank_differently(tokenizer, random_loaded, rule, first):
    # Position 0 has the lowest entropy, 1 the highest top probability, 2 the widest top-1 minus top-2 margin.
    rows = [[0.54, 0.46], [0.56, 0.22, 0.22], [0.40] + [0.03] * 20]
    model = ScriptedLogits(scripted_table(rows, len(tokenizer)))
    prompt, attention_mask = encode_prompts(tokenizer, PROMPTS[:1], random_loaded.ids)
    config = SamplerConfig(gen_length=3, steps=3, block_length=3, remasking=rule)
    result = generate(model, prompt, random_loaded.ids, config, attention_mask=attention_mask)
    assert result.trajectory.steps[0].positions[0] == [first]


@pytest.mark.parametrize("rule,first", [("margin", 2), ("entropy", 0)])
def test_threshold_falls_back_to_rule_ranking(tokenizer, random_loaded, rule, first):
    rows = [[0.54, 0.46], [0.56, 0.22, 0.22], [0.40] + [0.03] * 20]
    model = ScriptedLogits(scripted_table(rows, len(tokenizer)))
    prompt, attention_mask = encode_prompts(tokenizer, PROMPTS[:1], random_loaded.ids)
    config = SamplerConfig(gen_length=3, steps=3, block_length=3, remasking=rule, threshold=0.9)
    result = generate(model, prompt, random_loaded.ids, config, attention_mask=attention_mask)
    assert result.trajectory.steps[0].positions[0] == [first]


def test_threshold_rows_finish_blocks_apart(tokenizer, random_loaded):
    confident = scripted_table([[0.99, 0.01]] * 4, len(tokenizer))
    hesitant = scripted_table([[0.5, 0.5]] * 4, len(tokenizer))
    model = ScriptedLogits(torch.stack([confident, hesitant]))
    prompt, attention_mask = encode_prompts(tokenizer, PROMPTS, random_loaded.ids)
    config = SamplerConfig(gen_length=4, steps=4, block_length=4, threshold=0.9)
    result = generate(model, prompt, random_loaded.ids, config, attention_mask=attention_mask)
    steps = result.trajectory.steps
    assert steps[0].positions == [[0, 1, 2, 3], [0]]
    assert [step.positions[0] for step in steps[1:]] == [[], [], []]
    assert [len(step.positions[1]) for step in steps[1:]] == [1, 1, 1]


def test_threshold_notes_that_steps_are_ignored():
    config = SamplerConfig(gen_length=256, block_length=32, steps=8, threshold=0.9).validate()
    assert any("steps 8 is ignored" in note for note in config.notes)
    assert not any("tokens are committed per step" in note for note in config.notes)


@pytest.mark.parametrize("suppress", [True, False])
def test_stop_confidence_suppression_at_temperature(random_loaded, suppress):
    ids = random_loaded.ids
    model = EOSBonus(random_loaded.model, ids.eos, bonus=1.0)
    prompt, attention_mask = encode_prompts(random_loaded.tokenizer, PROMPTS, ids)
    config = SamplerConfig(gen_length=48, steps=48, block_length=16, temperature=0.7, seed=3,
                           suppress_stop_confidence=suppress)
    result = generate(model, prompt, ids, config, attention_mask=attention_mask)
    first_tokens = []
    for block in range(3):
        first_step = next(step for step in result.trajectory.steps if step.block == block)
        first_tokens += [tokens[0] for tokens in first_step.token_ids]
    if suppress:
        assert ids.eos not in first_tokens
    else:
        assert set(first_tokens) == {ids.eos}  # the model really does favour end-of-text


@pytest.mark.parametrize("threshold", [None, 0.9])
def test_suppressed_stop_tokens_still_fill_the_block(random_loaded, threshold):
    ids = random_loaded.ids
    model = EOSBonus(random_loaded.model, ids.eos, bonus=50.0)  # every prediction is end-of-text
    prompt, attention_mask = encode_prompts(random_loaded.tokenizer, PROMPTS, ids)
    config = SamplerConfig(gen_length=16, steps=8, block_length=8, temperature=0.7, seed=0,
                           suppress_stop_confidence=True, threshold=threshold)
    result = generate(model, prompt, ids, config, attention_mask=attention_mask)
    assert not (result.tokens == ids.mask).any()
    assert (result.tokens == ids.eos).all()


@pytest.mark.parametrize("temperature", [0.0, 0.7])
def test_suppressed_eos_logits_never_predict_eos(random_loaded, temperature):
    ids = random_loaded.ids
    model = EOSBonus(random_loaded.model, ids.eos, bonus=50.0)
    prompt, attention_mask = encode_prompts(random_loaded.tokenizer, PROMPTS, ids)
    config = SamplerConfig(gen_length=16, steps=8, block_length=8, temperature=temperature, seed=0,
                           suppress_eos_logits=True)
    result = generate(model, prompt, ids, config, attention_mask=attention_mask)
    assert not (result.tokens == ids.eos).any()
    assert not (result.tokens == ids.mask).any()


@pytest.mark.parametrize("cache", ["none", "prefix", "dual"])
def test_early_stop_fills_padding_and_saves_passes(random_loaded, cache):
    ids = random_loaded.ids
    model = EOSBonus(random_loaded.model, ids.eos, bonus=50.0)
    prompt, attention_mask = encode_prompts(random_loaded.tokenizer, PROMPTS, ids)
    config = SamplerConfig(gen_length=32, steps=32, block_length=8, cache=cache, early_stop=True)
    result = generate(model, prompt, ids, config, attention_mask=attention_mask)
    assert result.nfe == 1
    assert (result.tokens == ids.eos).all()
    assert sorted(result.trajectory.steps[0].positions[0]) == list(range(32))


def test_early_stop_needs_confident_padding(random_loaded):
    ids = random_loaded.ids
    model = EOSBonus(random_loaded.model, ids.eos, bonus=0.5)  # end-of-text most likely, below 0.9
    prompt, attention_mask = encode_prompts(random_loaded.tokenizer, PROMPTS[:1], ids)
    x = torch.cat([prompt, torch.full((1, 16), ids.mask)], dim=1)
    mask = torch.cat([attention_mask, torch.ones(1, 16, dtype=torch.long)], dim=1)
    eos_probability = torch.softmax(model(x, attention_mask=mask).logits[0, prompt.shape[1]:], dim=-1)[:, ids.eos]
    assert (eos_probability < EARLY_STOP_PROBABILITY).all()
    config = SamplerConfig(gen_length=16, steps=16, block_length=8, early_stop=True)
    result = generate(model, prompt, ids, config, attention_mask=attention_mask)
    assert result.nfe == 16


def test_early_stop_waits_for_content(random_loaded):
    ids = random_loaded.ids
    prompt, attention_mask = encode_prompts(random_loaded.tokenizer, PROMPTS[:1], ids)
    prompt_length = prompt.shape[1]

    class PaddingFromSecondBlock(torch.nn.Module):
        """End-of-text is near certain from generated offset 8 on; the first block keeps the model's logits."""

        def forward(self, input_ids, attention_mask=None):
            output = random_loaded.model(input_ids=input_ids, attention_mask=attention_mask)
            output.logits[:, prompt_length + 8:, ids.eos] = 1e3
            return output

    config = SamplerConfig(gen_length=32, steps=32, block_length=8, early_stop=True)
    result = generate(PaddingFromSecondBlock(), prompt, ids, config, attention_mask=attention_mask)
    assert result.nfe == 9  # eight steps of content in the first block, then one fills the rest
    assert ids.eos not in result.tokens[0, :8].tolist()
    assert (result.tokens[0, 8:] == ids.eos).all()


@pytest.mark.parametrize("gen_length,block_length,steps", [(30, 7, 3), (40, 16, 40), (17, 17, 5)])
@pytest.mark.parametrize("threshold", [None, 0.9, 1.0])
@pytest.mark.parametrize("cache", ["none", "prefix", "dual"])
@pytest.mark.parametrize("early_stop", [False, True])
def test_no_masks_left_for_any_combination(random_loaded, gen_length, block_length, steps, threshold, cache,
                                           early_stop):
    ids = random_loaded.ids
    model = EOSBonus(random_loaded.model, ids.eos, bonus=2.0) if early_stop else random_loaded.model
    prompt, attention_mask = encode_prompts(random_loaded.tokenizer, PROMPTS, ids)
    config = SamplerConfig(gen_length=gen_length, steps=steps, block_length=block_length, threshold=threshold,
                           cache=cache, early_stop=early_stop, temperature=0.5, seed=0)
    result = generate(model, prompt, ids, config, attention_mask=attention_mask)
    assert result.tokens.shape == (len(PROMPTS), gen_length)
    assert not (result.tokens == ids.mask).any()
    for row in range(len(PROMPTS)):
        positions = sorted(itertools.chain.from_iterable(event.positions[row] for event in result.trajectory.steps))
        assert positions == list(range(gen_length))


@pytest.mark.parametrize("remasking", REMASKING_RULES)
@pytest.mark.parametrize("threshold", [None, 0.5])
@pytest.mark.parametrize("cache", ["none", "prefix", "dual"])
def test_same_seed_same_output_every_mode(random_loaded, remasking, threshold, cache):
    ids = random_loaded.ids
    prompt, attention_mask = encode_prompts(random_loaded.tokenizer, PROMPTS, ids)
    config = SamplerConfig(gen_length=24, steps=12, block_length=8, temperature=0.9, remasking=remasking,
                           threshold=threshold, cache=cache, seed=11)
    runs = []
    for global_seed in (1, 2):
        torch.manual_seed(global_seed)  # a draw from the global generator would change the output
        runs.append(generate(random_loaded.model, prompt, ids, config, attention_mask=attention_mask))
    assert torch.equal(runs[0].tokens, runs[1].tokens)
    assert committed_positions(runs[0]) == committed_positions(runs[1])


def test_parse_constraints_reads_offsets_and_words():
    assert parse_constraints("0:Once, 5:upon,", 16) == [(0, "Once"), (5, "upon")]
    assert parse_constraints("", 16) == []


@pytest.mark.parametrize("text,message", [
    ("Once", "offset:word"),
    ("3:", "offset:word"),
    ("x:Once", "not a whole number"),
    ("16:end", "outside the generated region"),
    ("-1:start", "outside the generated region"),
    ("2:a, 2:b", "twice"),
])
def test_bad_constraints_raise_value_error(text, message):
    with pytest.raises(ValueError, match=message):
        SamplerConfig(gen_length=16, steps=16, block_length=8, constraints=text).validate()


def test_constraint_words_fill_consecutive_offsets(tokenizer):
    config = SamplerConfig(gen_length=16, steps=16, block_length=8, constraints="0:Once, 6:upon")
    fixed = constraint_tokens(config, tokenizer)
    once = tokenizer("Once", add_special_tokens=False)["input_ids"]
    upon = tokenizer(" upon", add_special_tokens=False)["input_ids"]
    assert len(upon) > 1  # the bundled vocabulary splits it, so consecutive offsets are used
    assert fixed == {**{i: token for i, token in enumerate(once)}, **{6 + i: token for i, token in enumerate(upon)}}


@pytest.mark.parametrize("text,message", [("14:upon", "runs past"), ("0:Once, 2:upon", "overlaps")])
def test_constraint_tokens_reject_collisions(tokenizer, text, message):
    config = SamplerConfig(gen_length=16, steps=16, block_length=8, constraints=text)
    with pytest.raises(ValueError, match=message):
        constraint_tokens(config, tokenizer)


@pytest.mark.parametrize("cfg_scale,cache", [(0.0, "none"), (1.0, "dual")])
def test_fixed_tokens_stay_in_every_frame(random_loaded, cfg_scale, cache):
    ids = random_loaded.ids
    prompt, attention_mask = encode_prompts(random_loaded.tokenizer, PROMPTS, ids)
    config = SamplerConfig(gen_length=16, steps=12, block_length=8, constraints="1:Once, 9:upon",
                           cfg_scale=cfg_scale, cache=cache)
    fixed = constraint_tokens(config, random_loaded.tokenizer)
    offsets = torch.tensor(sorted(fixed)) + prompt.shape[1]
    expected = torch.tensor([fixed[offset] for offset in sorted(fixed)])
    frames = 0
    for event, x in iter_denoising(random_loaded.model, prompt, ids, config, attention_mask, fixed=fixed):
        frames += 1
        assert torch.equal(x[0, offsets], expected)
        assert torch.equal(x[1, offsets], expected)
        for positions in event.positions:
            assert not set(positions) & set(fixed)
    assert frames > 0


def test_fixed_tokens_shrink_the_schedule(random_loaded):
    ids = random_loaded.ids
    prompt, attention_mask = encode_prompts(random_loaded.tokenizer, PROMPTS[:1], ids)
    fixed = {0: 40, 1: 41}  # two of the block's eight positions
    config = SamplerConfig(gen_length=8, steps=6, block_length=8)
    result = generate(random_loaded.model, prompt, ids, config, attention_mask=attention_mask, fixed=fixed)
    assert [len(step.positions[0]) for step in result.trajectory.steps] == [1] * 6
    assert result.tokens[0, :2].tolist() == [40, 41]
    assert result.trajectory.initial_tokens(ids.mask)[:3] == [40, 41, ids.mask]


def test_constraints_without_fixed_tokens_raise(random_loaded):
    ids = random_loaded.ids
    prompt, attention_mask = encode_prompts(random_loaded.tokenizer, PROMPTS[:1], ids)
    config = SamplerConfig(gen_length=8, steps=8, block_length=8, constraints="0:Once")
    with pytest.raises(ValueError, match="constraint_tokens"):
        generate(random_loaded.model, prompt, ids, config, attention_mask=attention_mask)


def test_fixed_mask_id_is_rejected(random_loaded):
    ids = random_loaded.ids
    prompt, attention_mask = encode_prompts(random_loaded.tokenizer, PROMPTS[:1], ids)
    with pytest.raises(ValueError, match="mask id"):
        generate(random_loaded.model, prompt, ids, SamplerConfig(gen_length=8, steps=8, block_length=8),
                 attention_mask=attention_mask, fixed={2: ids.mask})


def test_unrecorded_trajectory_gives_same_tokens(random_loaded):
    ids = random_loaded.ids
    prompt, attention_mask = encode_prompts(random_loaded.tokenizer, PROMPTS, ids)
    config = SamplerConfig(gen_length=16, steps=8, block_length=8)
    recorded = generate(random_loaded.model, prompt, ids, config, attention_mask=attention_mask)
    bare = generate(random_loaded.model, prompt, ids, config, attention_mask=attention_mask,
                    record_trajectory=False)
    assert torch.equal(bare.tokens, recorded.tokens)
    assert bare.nfe == recorded.nfe
    assert bare.trajectory.steps == []


@pytest.mark.parametrize("changes,message", [
    ({"threshold": 0.0}, "threshold"),
    ({"threshold": 1.5}, "threshold"),
    ({"threshold": float("nan")}, "threshold"),
    ({"threshold": True}, "threshold"),
    ({"cache": "full"}, "cache"),
    ({"remasking": "confidence"}, "remasking"),
    ({"early_stop": "yes"}, "early_stop"),
    ({"suppress_eos_logits": 1}, "suppress_eos_logits"),
    ({"suppress_stop_confidence": None}, "suppress_stop_confidence"),
    ({"constraints": 5}, "constraints"),
])
def test_invalid_options_raise_value_error(changes, message):
    with pytest.raises(ValueError, match=message):
        dataclasses.replace(SamplerConfig(), **changes).validate()


def test_new_fields_have_cli_types():
    allowed = {"int", "float", "str", "bool", "int | None", "float | None"}
    for spec in dataclasses.fields(SamplerConfig):
        assert str(spec.type) in allowed, spec.name
        assert spec.default is not dataclasses.MISSING, spec.name
