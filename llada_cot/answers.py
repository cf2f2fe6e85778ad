"""Extract boxed answers from model outputs and grade them against gold answers.

An output is cut at the first end-of-text token, and the content of its last
``\\boxed{...}`` is the model's answer. Answers are normalised with cheap string
rules, compared as strings and plain numbers first, and handed to math-verify
(sympy) only when those checks do not decide.
"""

from __future__ import annotations

import logging
import math
import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

import math_verify
import sympy
from math_verify.errors import TimeoutException

logger = logging.getLogger(__name__)

STOP_STRINGS: tuple[str, ...] = ("<|endoftext|>", "<|eot_id|>")

# Limit for each math-verify parse or verify call. math-verify enforces it with
# signal.alarm, which only works in the main thread, so other threads run without it.
MATH_VERIFY_TIMEOUT_SECONDS = 5

# Answers whose numbers may have more decimal digits than this are not passed to
# math_verify.verify. Without the check, verify ran until its timeout on "9^{9^{9}}"
# in the main thread, and other threads have no timeout at all. Measured with
# math-verify 0.9.0 on a 2-core CPU machine: "2^{10^{6}}" (about 300,000 digits) took
# about 0.1 s against "5", so the limit is far above any real answer.
MAX_ANSWER_DIGITS = 100_000


def _drop_timeout_notice(record: logging.LogRecord) -> bool:
    """Drop math-verify's warning that its timeout is off, which it logs for any call outside the main thread.

    Threaded callers cannot use its signal-based timeout, and MAX_ANSWER_DIGITS
    bounds the work instead, so the warning needs no action.
    """
    return not record.getMessage().startswith("Timeout is disabled")


for _name in ("math_verify.parser", "math_verify.grader"):
    logging.getLogger(_name).addFilter(_drop_timeout_notice)

_BOX_START = re.compile(r"\\(?:boxed|fbox)\s*\{")

# A number as written in text: optional minus sign, optional thousands separators,
# optional decimal part. The look-behind keeps "3-5" from yielding "-5" and "x2" from yielding "2".
_NUMBER_IN_TEXT = re.compile(
    r"(?<![\w.])-?(?:\d{1,3}(?:,\d{3})+(?!\d)|\d+)(?:\.\d+)?"
    r"|(?<![\w.])-?\.\d+"
)
_PLAIN_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)")
_GROUPED_NUMBER = re.compile(r"([+-]?\d{1,3}(?:,\d{3})+(?:\.\d+)?)(\\%)?")

_MATH_DELIMITERS = (("$", "$"), ("\\(", "\\)"), ("\\[", "\\]"))
_SPACING_COMMANDS = re.compile(r"\\[!,;:]|\\displaystyle(?![A-Za-z])")
_LEFT_RIGHT = re.compile(r"\\(?:left|right)(?![A-Za-z])")
_FRAC_VARIANTS = re.compile(r"\\[dt]frac(?![A-Za-z])")
_DEGREES = re.compile(r"\^\s*\{\s*\\circ\s*\}|\^\s*\\circ(?![A-Za-z])|\\degree(?![A-Za-z])|°")
_TEXT_COMMAND = r"\\(?:text|textrm|textbf|mbox)\s*\{([^{}]*)\}"
_TRAILING_TEXT_UNIT = re.compile(r"(?<=\S)\s*" + _TEXT_COMMAND + r"(?:\s*\^\s*\{?\d\}?)?\s*$")
_TEXT_GROUP = re.compile(_TEXT_COMMAND)
_CURRENCY = r"(?:\\\$|\$|€|£|¥|₩)"
_CURRENCY_BEFORE_NUMBER = re.compile(_CURRENCY + r"\s*(?=[+-]?\.?\d)")
_CURRENCY_AFTER_NUMBER = re.compile(r"(?<=\d)\s*" + _CURRENCY)
_BARE_PERCENT = re.compile(r"(?<!\\)%")
_NUMBER_WITH_WORDS = re.compile(r"([+-]?[\d.,]*\d(?:\\%)?)\s+[A-Za-z]{2,}[A-Za-z ]*")
_BRACED_THOUSANDS_SEPARATOR = re.compile(r"(?<=\d)\{,\}(?=\d{3}(?!\d))")

_LATEX_COMMAND = re.compile(r"\\[A-Za-z]+")
_WORD = re.compile(r"[A-Za-z]{3,}")
# Letter runs that are function names rather than prose, so a gold answer may contain them.
_MATH_WORDS = frozenset({
    "sin", "cos", "tan", "cot", "sec", "csc", "arcsin", "arccos", "arctan",
    "sinh", "cosh", "tanh", "log", "exp", "sqrt", "max", "min", "gcd", "lcm",
    "mod", "det", "inf", "infty",
})


@dataclass(frozen=True)
class Grade:
    """Result of grading one model output against one gold answer.

    ``model_answer`` is the answer as extracted from the output, before
    normalisation. ``gold_answer`` is the normalised gold answer. ``excluded``
    is True when the gold answer could not be parsed, and then ``correct`` is
    False: such an item is reported but left out of the accuracy.
    """

    model_answer: str | None
    gold_answer: str | None
    correct: bool
    excluded: bool


def cut_at_stop(text: str, stop_strings: Sequence[str] = STOP_STRINGS) -> str:
    """Return ``text`` up to the first occurrence of any stop string.

    The whole text is returned when no stop string occurs. Empty stop strings are ignored.
    """
    end = len(text)
    for stop in stop_strings:
        if not stop:
            continue
        index = text.find(stop, 0, end)
        if index != -1:
            end = index
    return text[:end]


def _read_braced(text: str, start: int) -> str | None:
    """Return ``text[start:]`` up to the brace that closes an already open ``{``.

    Backslash-escaped characters such as ``\\{`` are skipped, so they do not count
    as braces. Returns None when the group is never closed.
    """
    depth = 1
    index = start
    while index < len(text):
        char = text[index]
        if char == "\\":
            index += 2
            continue
        if char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
            if depth == 0:
                return text[start:index]
        index += 1
    return None


def _find_last_box(text: str) -> tuple[bool, str | None]:
    """Return whether ``text`` contains a box, and the content of the last box.

    The content is None when the last box is not closed.
    """
    starts = list(_BOX_START.finditer(text))
    if not starts:
        return False, None
    return True, _read_braced(text, starts[-1].end())


def extract_boxed(text: str) -> str | None:
    """Return the content of the last ``\\boxed{...}`` or ``\\fbox{...}`` in ``text``.

    Braces inside the box may nest, and whitespace may separate the command from its
    brace. The box that starts last decides: when its braces are not balanced the
    model did not finish its answer and the result is None, even if an earlier box
    is complete. For nested boxes such as ``\\boxed{\\boxed{3}}`` the inner box starts
    last, so the result is ``3``. Returns None when there is no box.
    """
    _, content = _find_last_box(text)
    return content


def extract_answer(
    text: str,
    *,
    stop_strings: Sequence[str] = STOP_STRINGS,
    fallback_last_number: bool = False,
) -> str | None:
    """Extract the model's answer from a raw output.

    The output is cut at the first stop string, then the last box is taken, with
    surrounding whitespace stripped. With ``fallback_last_number``, an output without
    any box yields its last number as written (``-3``, ``2.5``, ``8,000``). An output
    whose last box is not closed yields None in either mode. An empty answer is None.
    """
    text = cut_at_stop(text, stop_strings)
    has_box, content = _find_last_box(text)

    if has_box:
        answer = content
    elif fallback_last_number:
        numbers = _NUMBER_IN_TEXT.findall(text)
        answer = numbers[-1] if numbers else None
    else:
        answer = None

    if answer is None:
        return None
    answer = answer.strip()
    return answer or None


def _strip_wrappers(text: str) -> str:
    """Strip whitespace, a trailing period and enclosing math delimiters until none is left."""
    while True:
        previous = text
        text = text.strip()
        if text.endswith(".") and len(text) > 1:
            text = text[:-1]
        for opening, closing in _MATH_DELIMITERS:
            if len(text) >= len(opening) + len(closing) and text.startswith(opening) and text.endswith(closing):
                text = text[len(opening):len(text) - len(closing)]
        if text == previous:
            return text


def _remove_text_units(text: str) -> str:
    """Drop a trailing ``\\text{unit}`` after an answer, then unwrap the remaining ``\\text{...}``.

    A trailing group is dropped only when its content contains a letter and no digit,
    so "5 \\text{ cm}" becomes "5" while "x = \\text{5}" keeps its number.
    """
    unit = _TRAILING_TEXT_UNIT.search(text)
    if unit is not None:
        content = unit.group(1)
        if re.search(r"[A-Za-z]", content) and not re.search(r"\d", content):
            text = text[:unit.start()]
    return _TEXT_GROUP.sub(lambda match: match.group(1).strip(), text)


def normalize_answer(text: str) -> str:
    """Normalise an answer string with cheap rules before any math parsing.

    The rules strip whitespace, enclosing ``$...$``, ``\\(...\\)`` and ``\\[...\\]``,
    a trailing period, the spacing commands ``\\! \\, \\; \\:``, ``\\displaystyle``,
    ``\\left`` and ``\\right``. ``\\dfrac`` and ``\\tfrac`` become ``\\frac``, and
    degree signs are removed.

    Units: a trailing ``\\text{...}`` without digits is dropped ("5 \\text{ cm}" -> "5"),
    other ``\\text{...}`` groups are unwrapped ("\\text{5}" -> "5"), and words after a
    lone number are dropped ("5 apples" -> "5").

    Currency signs ($, \\$, €, £, ¥, ₩) are removed only when they touch a number, so
    a dollar sign is never taken for a math delimiter inside an expression.

    Percent: a bare ``%`` becomes ``\\%`` and is kept, because removing it would make
    "30%" equal to 30 but not to 0.3. math-verify 0.9.0 accepts both 30 and 0.3 for
    "30\\%", so the decision is left to it.

    Thousands separators: ``{,}`` between digits is removed everywhere
    ("9{,}500" -> "9500"). Commas are removed from a whole answer that is a single
    number with groups of exactly three digits ("8,000" -> "8000"), so tuples and
    sets such as "(1,2)", "1,2" and "(1,234)" stay as they are.
    """
    text = text.replace("\u2212", "-")
    text = _strip_wrappers(text)

    text = _SPACING_COMMANDS.sub("", text)
    text = _LEFT_RIGHT.sub("", text)
    text = _FRAC_VARIANTS.sub(r"\\frac", text)
    text = _DEGREES.sub("", text)
    text = _remove_text_units(text)

    text = _CURRENCY_BEFORE_NUMBER.sub("", text)
    text = _CURRENCY_AFTER_NUMBER.sub("", text)
    text = _BARE_PERCENT.sub(r"\\%", text)
    text = _strip_wrappers(text)

    number_with_words = _NUMBER_WITH_WORDS.fullmatch(text)
    if number_with_words is not None:
        text = number_with_words.group(1)

    text = _BRACED_THOUSANDS_SEPARATOR.sub("", text)
    grouped_number = _GROUPED_NUMBER.fullmatch(text)
    if grouped_number is not None:
        text = grouped_number.group(1).replace(",", "") + (grouped_number.group(2) or "")

    return re.sub(r"\s+", " ", text).strip()


def _math_verify_timeout() -> int | None:
    """Return the timeout to pass to math-verify in the calling thread.

    math-verify raises ValueError when its signal-based timeout is used outside the
    main thread, and it documents ``None`` as the setting for threaded callers.
    """
    if threading.current_thread() is threading.main_thread():
        return MATH_VERIFY_TIMEOUT_SECONDS
    return None


def _parse_math(text: str) -> list:
    """Parse normalised answer text with math-verify, read as inline LaTeX."""
    return math_verify.parse(f"${text}$", parsing_timeout=_math_verify_timeout())


def _log10_of_integer(value: int) -> float:
    """Return log10 of ``|value|``, or 0.0 for zero."""
    if value == 0:
        return 0.0
    return math.log10(abs(value))


def _log10_bound(expr: sympy.Basic) -> float:
    """Return an upper estimate of log10 of the largest number that ``expr`` evaluates through.

    The estimate follows integer powers and factorials. Symbols and floats count as 1,
    so the estimate only guards against integers too large to compute.
    """
    if isinstance(expr, sympy.Rational):
        return max(_log10_of_integer(expr.p), _log10_of_integer(expr.q))
    if isinstance(expr, sympy.Pow):
        base_log = _log10_bound(expr.base)
        exponent_log = _log10_bound(expr.exp)
        if base_log == 0.0:
            return exponent_log
        if exponent_log > 300:
            return math.inf
        return max(base_log * 10.0**exponent_log, exponent_log)
    if isinstance(expr, sympy.factorial):
        argument_log = _log10_bound(expr.args[0])
        if argument_log > 15:
            return math.inf
        return math.lgamma(10.0**argument_log + 1) / math.log(10)

    child_logs = [_log10_bound(arg) for arg in expr.args if isinstance(arg, sympy.Basic)]
    if not child_logs:
        return 0.0
    if isinstance(expr, sympy.Mul):
        return sum(child_logs)
    return max(child_logs) + math.log10(len(child_logs))


def _is_too_large(parsed: list) -> bool:
    """Return whether any parsed expression may contain more than MAX_ANSWER_DIGITS digits."""
    for item in parsed:
        if not isinstance(item, sympy.Basic):
            continue
        try:
            if _log10_bound(item) > MAX_ANSWER_DIGITS:
                return True
        except RecursionError:
            return True
    return False


def _verify_with_math_verify(prediction: str, gold: str) -> bool:
    """Compare two normalised answers with math-verify, returning False on any failure it reports."""
    timeout = _math_verify_timeout()
    try:
        gold_parsed = _parse_math(gold)
        prediction_parsed = _parse_math(prediction)
        if not gold_parsed or not prediction_parsed:
            return False
        if _is_too_large(gold_parsed) or _is_too_large(prediction_parsed):
            logger.debug(
                "Skipped math-verify for prediction %r and gold %r: numbers may exceed %d digits",
                prediction, gold, MAX_ANSWER_DIGITS,
            )
            return False
        return bool(math_verify.verify(gold_parsed, prediction_parsed, timeout_seconds=timeout))
    # With raise_on_error=False (the default), math-verify 0.9.0 catches Exception itself.
    # It still raises ValueError when the signal timeout is used outside the main thread,
    # and its TimeoutException derives from BaseException, so it can escape when the alarm
    # fires outside math-verify's own handler.
    except (ValueError, TimeoutException) as error:
        logger.debug("math-verify failed on prediction %r and gold %r: %r", prediction, gold, error)
        return False


def is_equivalent(prediction: str | None, gold: str | None) -> bool:
    """Return whether a predicted answer matches the gold answer.

    It never raises for str or None arguments, because math-verify failures count as no match.

    Both answers are normalised with normalize_answer. Equal strings match, and two
    plain decimal numbers are compared exactly as Decimals ("30.0" matches "30").
    Everything else goes to math-verify, which compares values symbolically and
    numerically: "0.5" matches "\\frac{1}{2}", and an assignment such as "x=5"
    matches "5" in either order, but "x=5" does not match "y=5".
    """
    if prediction is None or gold is None:
        return False

    prediction = normalize_answer(prediction)
    gold = normalize_answer(gold)
    if not prediction or not gold:
        return False
    if prediction == gold:
        return True

    if _PLAIN_NUMBER.fullmatch(prediction) and _PLAIN_NUMBER.fullmatch(gold):
        return Decimal(prediction) == Decimal(gold)

    return _verify_with_math_verify(prediction, gold)


def _contains_prose(text: str) -> bool:
    """Return whether ``text`` contains a word of three or more letters that is no function name."""
    without_commands = _LATEX_COMMAND.sub(" ", text)
    return any(word.lower() not in _MATH_WORDS for word in _WORD.findall(without_commands))


def parse_gold(answer: str) -> str | None:
    """Return the normalised gold answer, or None when it cannot be parsed.

    Accepted forms are a plain answer ("30", "\\frac{1}{2}", "8,000"), a box
    ("\\boxed{30}"), GSM8K text ending in "#### 72", and a MATH solution whose last
    box is the answer. "####" takes precedence over boxes.

    None is returned for empty text, "####" without an answer, a box that is not
    closed, text from which math-verify extracts no expression, and prose.
    math-verify 0.9.0 reads a word such as "banana" as a product of single-letter
    symbols, so any run of three or more letters outside LaTeX commands and common
    function names counts as prose.

    NOTE: a text answer such as "\\text{east}" is therefore rejected as well.
    """
    text = answer.strip()
    if "####" in text:
        text = text.rsplit("####", 1)[1]
    elif _BOX_START.search(text):
        text = extract_boxed(text)
        if text is None:
            return None

    gold = normalize_answer(text)
    if not gold or _contains_prose(gold):
        return None

    try:
        parsed = _parse_math(gold)
    except (ValueError, TimeoutException) as error:
        logger.debug("math-verify failed to parse gold answer %r: %r", gold, error)
        return None
    if not any(isinstance(item, (sympy.Basic, sympy.MatrixBase)) for item in parsed):
        return None
    return gold


def grade(
    raw_output: str,
    gold: str,
    *,
    stop_strings: Sequence[str] = STOP_STRINGS,
    fallback_last_number: bool = False,
) -> Grade:
    """Grade one raw model output against one gold answer.

    The gold answer is read with parse_gold and the model's answer with extract_answer.
    An unparsable gold answer gives an excluded grade that is never correct.
    """
    gold_answer = parse_gold(gold)
    model_answer = extract_answer(
        raw_output, stop_strings=stop_strings, fallback_last_number=fallback_last_number
    )
    if gold_answer is None:
        return Grade(model_answer=model_answer, gold_answer=None, correct=False, excluded=True)

    correct = is_equivalent(model_answer, gold_answer)
    return Grade(model_answer=model_answer, gold_answer=gold_answer, correct=correct, excluded=False)
