from llada_cot.ui.render import (CONTINUATION_GLYPH, END, KEPT, MASK, MASK_GLYPH, NEW, REPLACEMENT_CHARACTER,
                                 TokenRenderer, commit_plot)


def encode(tokenizer, text):
    return tokenizer.encode(text, add_special_tokens=False)


def test_whitespace_tokens_stay_visible(tokenizer, random_loaded):
    renderer = TokenRenderer(tokenizer, random_loaded.ids)
    tokens = encode(tokenizer, "3 + 4 = 7\n\\boxed{7}")
    frame = renderer.frame(tokens)
    assert len(frame) == len(tokens)  # one entry per position, none dropped
    texts = [text for text, _ in frame]
    assert all(text.strip() for text in texts)  # no entry renders as blank
    assert "↵" in texts
    assert any("␣" in text for text in texts)


def test_labels_mask_new_and_kept(tokenizer, random_loaded):
    ids = random_loaded.ids
    renderer = TokenRenderer(tokenizer, ids)
    tokens = encode(tokenizer, "12") + [ids.mask]
    frame = renderer.frame(tokens, new_positions={1})
    assert [label for _, label in frame] == [KEPT, NEW, MASK]
    assert frame[2][0] == MASK_GLYPH


def test_positions_after_first_stop_are_padding(tokenizer, random_loaded):
    ids = random_loaded.ids
    renderer = TokenRenderer(tokenizer, ids)
    answer = encode(tokenizer, "\\boxed{5}")
    noise = encode(tokenizer, " \\boxed{7}")
    tokens = answer + [ids.eot, ids.eos] + noise
    labels = [label for _, label in renderer.frame(tokens)]
    assert labels[:len(answer)] == [KEPT] * len(answer)
    assert labels[len(answer):] == [END] * (2 + len(noise))


def test_commit_plot_has_one_point_per_position(tokenizer, random_loaded):
    renderer = TokenRenderer(tokenizer, random_loaded.ids)
    steps = [{"step": 0, "block": 0, "positions": [1, 0], "token_ids": [5, 6], "confidences": [0.9, 0.5]},
             {"step": 1, "block": 1, "positions": [2], "token_ids": [7], "confidences": [0.4]}]
    figure = commit_plot(steps, [6, 5, 7], renderer)
    assert list(figure.data[0].x) == [1, 0, 2]
    assert list(figure.data[0].y) == [0, 0, 1]


def test_split_character_shows_whole(tokenizer, random_loaded):
    renderer = TokenRenderer(tokenizer, random_loaded.ids)
    tokens = encode(tokenizer, "8 ÷ 2 사과")
    frame = renderer.frame(tokens)
    texts = [text for text, _ in frame]
    assert len(frame) == len(tokens)
    assert REPLACEMENT_CHARACTER not in "".join(texts)
    assert "÷" in texts
    assert "사" in texts
    assert "과" in texts
    # "÷" takes two byte tokens and each syllable three, so five later positions show the mark.
    assert texts == ["8", "␣", "÷", CONTINUATION_GLYPH, "␣", "2", "␣",
                     "사", CONTINUATION_GLYPH, CONTINUATION_GLYPH, "과", CONTINUATION_GLYPH, CONTINUATION_GLYPH]


def test_split_character_partly_masked(tokenizer, random_loaded):
    ids = random_loaded.ids
    renderer = TokenRenderer(tokenizer, ids)
    tokens = encode(tokenizer, "÷")
    assert len(tokens) > 1  # the bundled byte-level tokenizer splits it
    partial = tokens[:1] + [ids.mask] * (len(tokens) - 1)
    frame = renderer.frame(partial)
    # Until the rest is committed, the first byte cannot form a character and stays as decoded.
    assert frame[0][0] == REPLACEMENT_CHARACTER
    assert [label for _, label in frame[1:]] == [MASK] * (len(tokens) - 1)
