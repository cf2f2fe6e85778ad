"""Tests for extracting boxed answers and grading them against gold answers."""

from __future__ import annotations

import logging
import threading

import pytest

from llada_cot.answers import (
    STOP_STRINGS,
    Grade,
    cut_at_stop,
    extract_answer,
    extract_boxed,
    grade,
    is_equivalent,
    normalize_answer,
    parse_gold,
)

THREAD_JOIN_SECONDS = 60


@pytest.mark.parametrize(
    ("text", "stop_strings", "expected"),
    [
        pytest.param("\\boxed{5} done", STOP_STRINGS, "\\boxed{5} done", id="no-stop"),
        pytest.param("a<|eot_id|>b<|endoftext|>c", STOP_STRINGS, "a", id="first-stop-wins"),
        pytest.param("a<|endoftext|>b<|eot_id|>c", STOP_STRINGS, "a", id="order-of-list-irrelevant"),
        pytest.param("a</s>b", ("</s>",), "a", id="custom-stop"),
        pytest.param("abc", ("", "c"), "ab", id="empty-stop-ignored"),
    ],
)
def test_cut_at_stop(text: str, stop_strings: tuple[str, ...], expected: str) -> None:
    assert cut_at_stop(text, stop_strings) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("so \\boxed{5}.", "5", id="simple"),
        pytest.param("\\boxed{\\frac{1}{3}}", "\\frac{1}{3}", id="nested-frac"),
        pytest.param("\\boxed{2^{10}}", "2^{10}", id="nested-power"),
        pytest.param("first \\boxed{4} ... final \\boxed{7}", "7", id="last-box-wins"),
        pytest.param("\\fbox{12}", "12", id="fbox"),
        pytest.param("\\boxed {x}", "x", id="space-before-brace"),
        pytest.param("\\boxed{\\{1,2\\}}", "\\{1,2\\}", id="escaped-braces"),
        pytest.param("\\boxed{\\boxed{3}}", "3", id="nested-boxes-inner"),
        pytest.param("\\boxed{}", "", id="empty-box"),
        pytest.param("\\boxed{3", None, id="unbalanced"),
        pytest.param("\\boxed{4} then \\boxed{7", None, id="unbalanced-last-box"),
        pytest.param("\\boxed{3 then \\boxed{7}", "7", id="unbalanced-earlier-box"),
        pytest.param("the answer is 7", None, id="no-box"),
        pytest.param("\\boxedx{7}", None, id="other-command"),
    ],
)
def test_extract_boxed(text: str, expected: str | None) -> None:
    assert extract_boxed(text) == expected


@pytest.mark.parametrize(
    ("text", "fallback", "expected"),
    [
        pytest.param("... \\boxed{5}<|eot_id|><|endoftext|> \\boxed{7}", False, "5", id="cut-before-box"),
        pytest.param("\\boxed{ 42 }", False, "42", id="box-stripped"),
        pytest.param("\\boxed{  }", False, None, id="blank-box"),
        pytest.param("", False, None, id="empty-output"),
        pytest.param("", True, None, id="empty-output-fallback"),
        pytest.param("the answer is 72", False, None, id="fallback-off"),
        pytest.param("the answer is 72", True, "72", id="fallback-on"),
        pytest.param("it drops to -3 degrees", True, "-3", id="fallback-negative"),
        pytest.param("each weighs 2.5 kg", True, "2.5", id="fallback-decimal"),
        pytest.param("a total of 1,234 items", True, "1,234", id="fallback-thousands"),
        pytest.param("she earns 8,000.", True, "8,000", id="fallback-sentence-end"),
        pytest.param("compute 3-5", True, "5", id="fallback-subtraction"),
        pytest.param("x2 and y", True, None, id="fallback-no-number"),
        pytest.param("1 + 2 = \\boxed{3} so 99", True, "3", id="fallback-box-first"),
        pytest.param("1 + 2 = \\boxed{3", True, None, id="fallback-unbalanced-box"),
        pytest.param("72 <|endoftext|> 99", True, "72", id="fallback-after-cut"),
    ],
)
def test_extract_answer(text: str, fallback: bool, expected: str | None) -> None:
    assert extract_answer(text, fallback_last_number=fallback) == expected


def test_extract_answer_custom_stop() -> None:
    assert extract_answer("\\boxed{1}</s>\\boxed{2}", stop_strings=("</s>",)) == "1"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(" $30$ ", "30", id="dollar-delimiters"),
        pytest.param("\\(30\\)", "30", id="paren-delimiters"),
        pytest.param("30.", "30", id="trailing-period"),
        pytest.param("\u22123", "-3", id="unicode-minus"),
        pytest.param("8,000", "8000", id="thousands"),
        pytest.param("1,234,567", "1234567", id="thousands-twice"),
        pytest.param("-1,234.50", "-1234.50", id="thousands-decimal"),
        pytest.param("9{,}500", "9500", id="thousands-braced"),
        pytest.param("1\\,000", "1000", id="thousands-thin-space"),
        pytest.param("(1,2)", "(1,2)", id="tuple-kept"),
        pytest.param("1,2", "1,2", id="pair-kept"),
        pytest.param("1,23", "1,23", id="two-digit-group-kept"),
        pytest.param("(1,234)", "(1,234)", id="tuple-of-three-digits-kept"),
        pytest.param("\\left( 1,\\! 2 \\right)", "( 1, 2 )", id="left-right-spacing"),
        pytest.param("\\dfrac{3}{4}", "\\frac{3}{4}", id="dfrac"),
        pytest.param("\\tfrac{3}{4}", "\\frac{3}{4}", id="tfrac"),
        pytest.param("5 \\text{ cm}", "5", id="text-unit"),
        pytest.param("5\\text{ m}^2", "5", id="text-unit-squared"),
        pytest.param("\\frac{1}{2}\\text{ cup}", "\\frac{1}{2}", id="text-unit-after-frac"),
        pytest.param("\\text{5}", "5", id="text-number"),
        pytest.param("x = \\text{5}", "x = 5", id="text-number-kept"),
        pytest.param("5 apples", "5", id="word-unit"),
        pytest.param("5 x", "5 x", id="single-letter-kept"),
        pytest.param("\\$30", "30", id="escaped-dollar"),
        pytest.param("$30", "30", id="bare-dollar"),
        pytest.param("\\$1,234.50", "1234.50", id="dollar-thousands"),
        pytest.param("-\\$5", "-5", id="dollar-negative"),
        pytest.param("€12", "12", id="euro"),
        pytest.param("12 £", "12", id="pound-after"),
        pytest.param("₩500", "500", id="won"),
        pytest.param("30%", "30\\%", id="percent-escaped"),
        pytest.param("90^\\circ", "90", id="degree-circ"),
        pytest.param("90^{\\circ}", "90", id="degree-braced"),
        pytest.param("90°", "90", id="degree-sign"),
    ],
)
def test_normalize_answer(text: str, expected: str) -> None:
    assert normalize_answer(text) == expected


@pytest.mark.parametrize(
    ("prediction", "gold", "expected"),
    [
        pytest.param("0.5", "\\frac{1}{2}", True, id="decimal-vs-frac"),
        pytest.param("1/2", "0.5", True, id="slash-vs-decimal"),
        pytest.param("\\dfrac{3}{4}", "0.75", True, id="dfrac-vs-decimal"),
        pytest.param("-2.5", "-\\frac{5}{2}", True, id="negative-frac"),
        pytest.param("0.333", "\\frac{1}{3}", False, id="rounded-decimal"),
        pytest.param("-3", "3", False, id="sign-differs"),
        pytest.param("-3", "-3.0", True, id="negative-decimal"),
        pytest.param("30.0", "30", True, id="trailing-zero"),
        pytest.param("2.50", "2.5", True, id="trailing-zero-fraction"),
        pytest.param("30.01", "30", False, id="close-number"),
        pytest.param("(1,2)", "(2,1)", False, id="tuple-order"),
        pytest.param("(1,2)", "(1, 2)", True, id="tuple-spacing"),
        pytest.param("\\{1,2\\}", "\\{2,1\\}", True, id="set-order"),
        pytest.param("1,2", "12", False, id="pair-vs-number"),
        pytest.param("8,000", "8000", True, id="thousands"),
        pytest.param("9{,}500", "9500", True, id="thousands-braced"),
        pytest.param("5 \\text{ cm}", "5", True, id="text-unit"),
        pytest.param("\\$30", "30", True, id="currency"),
        pytest.param("¥500", "500", True, id="yen"),
        pytest.param("30\\%", "30", True, id="percent-vs-number"),
        pytest.param("30%", "0.3", True, id="percent-vs-fraction"),
        pytest.param("0.3", "30", False, id="fraction-vs-number"),
        pytest.param("x=5", "5", True, id="assignment-prediction"),
        pytest.param("5", "x=5", True, id="assignment-gold"),
        pytest.param("x=5", "y=5", False, id="assignment-other-variable"),
        pytest.param("\\sqrt{2}", "2^{1/2}", True, id="sqrt-vs-power"),
        pytest.param("2^{2^{2}}", "16", True, id="small-power-tower"),
        pytest.param("9^{9^{9}}", "5", False, id="huge-power-tower"),
        pytest.param("banana", "5", False, id="prose"),
        pytest.param("", "5", False, id="empty-prediction"),
        pytest.param(None, "5", False, id="no-prediction"),
        pytest.param("5", None, False, id="no-gold"),
    ],
)
def test_is_equivalent(prediction: str | None, gold: str | None, expected: bool) -> None:
    assert is_equivalent(prediction, gold) is expected


def test_is_equivalent_logs_skipped_tower(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG, logger="llada_cot.answers"):
        is_equivalent("9^{9^{9}}", "5")

    assert "may exceed" in caplog.text


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        pytest.param("30", "30", id="plain"),
        pytest.param(" -2.5 ", "-2.5", id="plain-negative"),
        pytest.param("\\frac{1}{2}", "\\frac{1}{2}", id="plain-frac"),
        pytest.param("8,000", "8000", id="plain-thousands"),
        pytest.param("x=5", "x=5", id="plain-assignment"),
        pytest.param("\\boxed{30}", "30", id="boxed"),
        pytest.param("She has 8 + 64 = <<8+64=72>>72 apples.\n#### 72", "72", id="gsm8k"),
        pytest.param("#### 1,234", "1234", id="gsm8k-thousands"),
        pytest.param("Not \\boxed{9} but 72.\n#### 72", "72", id="gsm8k-over-box"),
        pytest.param(
            "First \\boxed{2} is wrong. So $x = \\boxed{\\frac{1}{2}}$.",
            "\\frac{1}{2}",
            id="math-solution",
        ),
        pytest.param("", None, id="empty"),
        pytest.param("   ", None, id="whitespace"),
        pytest.param("####", None, id="gsm8k-without-answer"),
        pytest.param("\\boxed{3", None, id="unbalanced-box"),
        pytest.param("banana", None, id="word"),
        pytest.param("see above", None, id="phrase"),
        pytest.param("\\text{east}", None, id="text-answer"),
        pytest.param("?", None, id="no-expression"),
    ],
)
def test_parse_gold(answer: str, expected: str | None) -> None:
    assert parse_gold(answer) == expected


def test_grade_cuts_before_box() -> None:
    result = grade("... \\boxed{5}<|eot_id|><|endoftext|> \\boxed{7}", "5")

    assert result == Grade(model_answer="5", gold_answer="5", correct=True, excluded=False)


def test_grade_wrong_answer() -> None:
    result = grade("so \\boxed{71}", "#### 72")

    assert result.correct is False
    assert result.excluded is False


def test_grade_gsm8k_gold_with_fallback() -> None:
    result = grade("So she has 1,234 apples.", "#### 1,234", fallback_last_number=True)

    assert result.model_answer == "1,234"
    assert result.gold_answer == "1234"
    assert result.correct is True


def test_grade_math_gold_with_box() -> None:
    result = grade("\\boxed{0.5}", "Divide: $\\boxed{\\dfrac{1}{2}}$.")

    assert result.gold_answer == "\\frac{1}{2}"
    assert result.correct is True


def test_grade_unparsable_gold_excluded() -> None:
    result = grade("\\boxed{5}", "see above")

    assert result.excluded is True
    assert result.correct is False
    assert result.gold_answer is None
    assert result.model_answer == "5"


def test_grade_unparsable_gold_equal_text() -> None:
    result = grade("\\boxed{banana}", "banana")

    assert result.excluded is True
    assert result.correct is False


def test_grade_empty_output() -> None:
    result = grade("", "5")

    assert result.model_answer is None
    assert result.correct is False
    assert result.excluded is False


def test_grade_unfinished_box() -> None:
    result = grade("so \\boxed{5", "5", fallback_last_number=True)

    assert result.model_answer is None
    assert result.correct is False


def test_grade_custom_stop_strings() -> None:
    result = grade("\\boxed{5}</s>\\boxed{7}", "7", stop_strings=("</s>",))

    assert result.model_answer == "5"
    assert result.correct is False


def test_is_equivalent_in_worker_thread() -> None:
    # math-verify's signal-based timeout raises ValueError outside the main thread,
    # which is_equivalent would turn into False, so True shows the timeout was disabled.
    results: dict[str, object] = {}

    def run() -> None:
        try:
            results["fraction"] = is_equivalent("0.5", "\\frac{1}{2}")
            results["tuple"] = is_equivalent("(1,2)", "(2,1)")
            results["tower"] = is_equivalent("9^{9^{9}}", "5")
            results["grade"] = grade("\\boxed{\\dfrac{3}{4}}", "0.75").correct
            results["gold"] = parse_gold("\\boxed{\\frac{1}{3}}")
        except BaseException as error:  # noqa: BLE001 - the test reports any escape
            results["error"] = error

    worker = threading.Thread(target=run)
    worker.start()
    worker.join(THREAD_JOIN_SECONDS)

    assert not worker.is_alive()
    assert "error" not in results
    assert results["fraction"] is True
    assert results["tuple"] is False
    assert results["tower"] is False
    assert results["grade"] is True
    assert results["gold"] == "\\frac{1}{3}"


def test_threaded_grading_logs_no_timeout_notice(caplog: pytest.LogCaptureFixture, monkeypatch) -> None:
    import math_verify.grader
    import math_verify.parser

    # math-verify logs the notice once per process, so the flags are reset to see it again.
    monkeypatch.setattr(math_verify.parser, "TIMEOUT_WARNING_SHOWN", False)
    monkeypatch.setattr(math_verify.grader, "TIMEOUT_WARNING_SHOWN", False)
    results = []
    with caplog.at_level(logging.WARNING):
        worker = threading.Thread(target=lambda: results.append(is_equivalent("\\frac{1}{2}", "0.5")))
        worker.start()
        worker.join()
    assert results == [True]
    assert not [record for record in caplog.records if record.name.startswith("math_verify")]
