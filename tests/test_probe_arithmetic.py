"""The arithmetic probe counts a line as right exactly when the model's one-pass result matches."""

from __future__ import annotations

import torch

from llada_cot.loading import encode_chat_prompt
from scripts.probe_arithmetic import probe_lines

GEN_LENGTH = 48
PROMPT = "Tom has 7 apples. He finds 2 more. How many apples does Tom have now?"


def predicted_result(loaded, prompt: str, left: str, n_tokens: int) -> str:
    """Return the model's argmax result for `left =` with the rest of the window masked."""
    tokenizer, ids = loaded.tokenizer, loaded.ids
    prompt_ids = encode_chat_prompt(tokenizer, prompt)
    context = prompt_ids + tokenizer.encode(left + " =", add_special_tokens=False)
    input_ids = torch.tensor([context + [ids.mask] * (len(prompt_ids) + GEN_LENGTH - len(context))])
    with torch.no_grad():
        logits = loaded.model(input_ids).logits[0, len(context):len(context) + n_tokens]
    return tokenizer.decode(logits.argmax(-1).tolist()).strip()


def test_probe_scores_model_own_answer(bundled):
    # The space and the first digit that the model predicts after "7 + 2 =" must count as right,
    # whatever the digit is, and another digit as wrong.
    guess = predicted_result(bundled, PROMPT, "7 + 2", n_tokens=2)
    assert len(guess) == 1
    assert guess.isdigit()
    wrong = str((int(guess) + 1) % 10)
    right_record = {"prompt": PROMPT, "rationales": [f"7 + 2 = {guess}"], "answer": f"\\boxed{{{guess}}}"}
    wrong_record = {"prompt": PROMPT, "rationales": [f"7 + 2 = {wrong}"], "answer": f"\\boxed{{{wrong}}}"}

    assert probe_lines(bundled, [right_record], GEN_LENGTH) == {(0, "+"): [1, 1]}
    assert probe_lines(bundled, [wrong_record], GEN_LENGTH) == {(0, "+"): [0, 1]}


def test_probe_counts_every_line(bundled):
    record = {"prompt": "Tom has 7 apples. He finds 2 more. He loses 3. Then he gets 2 times as many. "
                        "How many apples does Tom have now?",
              "rationales": ["7 + 2 = 9", "9 - 3 = 6", "6 × 2 = 12"], "answer": "\\boxed{12}"}
    counts = probe_lines(bundled, [record], GEN_LENGTH)
    assert sorted(counts) == [(0, "+"), (1, "-"), (2, "×")]
    assert all(total == 1 for _, total in counts.values())


def test_probe_skips_lines_without_equation(bundled):
    record = {"prompt": PROMPT, "rationales": ["Add the two numbers."], "answer": "\\boxed{9}"}
    assert probe_lines(bundled, [record], GEN_LENGTH) == {}
