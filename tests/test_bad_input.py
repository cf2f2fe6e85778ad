"""Malformed uploads and sampler settings sent to the page's API.

Each bad input must come back as a clear message: the line and the problem,
or the setting and the value. It must never come back as a Python traceback.
Afterwards the server must return the same output for a `generate` call as
before.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

import pytest
from gradio.utils import get_upload_folder
from gradio_client import handle_file
from gradio_client.exceptions import AppError

from llada_cot.data import MAX_LINE_BYTES
from llada_cot.ui.runtime import Runtime

from page_api import arguments, assert_no_traceback, serve

PROMPT = "What is 2 + 7?"
# Small settings keep each check call short; temperature 0 makes the output repeatable.
GOOD_SETTINGS = dict(gen_length=16, steps=16, block_length=8, temperature=0.0, cfg_scale=0.0,
                     remasking="low_confidence", seed="", threshold=0.0, cache="none", constraints="")

TRAINING_LINE = b'{"prompt": "Solve 3 + 4", "rationales": ["3 + 4 = 7"], "answer": "\\\\boxed{7}"}'
TEST_LINE = b'{"prompt": "What is 2 + 2?", "answer": "4"}'


@pytest.fixture(scope="module")
def runtime(bundled, tmp_path_factory):
    return Runtime(loaded=bundled, workspace=tmp_path_factory.mktemp("workspace"))


@pytest.fixture(scope="module")
def client(runtime):
    with serve(runtime) as client:
        yield client


@pytest.fixture(scope="module")
def reference(client):
    """The text generated for PROMPT before any bad input reached the server."""
    frame, text, *_ = client.predict(*arguments(client, "/generate", prompt=PROMPT, **GOOD_SETTINGS),
                                     api_name="/generate")
    assert text
    assert all(entry["class_or_confidence"] != "mask" for entry in frame)
    return text


def assert_still_serving(client, reference: str) -> None:
    frame, text, answer, stats, *_ = client.predict(
        *arguments(client, "/generate", prompt=PROMPT, **GOOD_SETTINGS), api_name="/generate")
    assert text == reference
    assert "NFE" in stats


# --- Uploads -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Expected:
    """What one tab's file check must report for an upload."""

    content: bytes
    location: str | None  # "line 2" or "line 2, field 'prompt'"; None for a problem of the whole file
    problems: tuple[str, ...]  # phrases of the message that name the problem


def after_good_line(good: bytes, bad: bytes) -> bytes:
    return good + b"\n" + bad + b"\n"


def training_case(bad_line: bytes, location: str, *problems: str) -> Expected:
    return Expected(after_good_line(TRAINING_LINE, bad_line), location, problems)


def evaluation_case(bad_line: bytes, location: str, *problems: str) -> Expected:
    return Expected(after_good_line(TEST_LINE, bad_line), location, problems)


def whole_file(content: bytes, *problems: str) -> tuple[Expected, Expected]:
    return Expected(content, None, problems), Expected(content, None, problems)


HUGE_LINE = b'{"prompt": "' + b"7" * (MAX_LINE_BYTES + 1) + b'", "rationales": [], "answer": "7"}'

# Each case: what the Fine-tune tab's check must report, then what the Evaluate tab's check must report.
BAD_UPLOADS = {
    "list line": (
        training_case(b'["Solve 3 + 4", "7"]', "line 2", "expected a JSON object", "got a list"),
        evaluation_case(b'["What is 2 + 2?", "4"]', "line 2", "expected a JSON object", "got a list"),
    ),
    "number line": (
        training_case(b"42", "line 2", "expected a JSON object", "got a number"),
        evaluation_case(b"42", "line 2", "expected a JSON object", "got a number"),
    ),
    "prompt is a number": (
        training_case(b'{"prompt": 5, "rationales": [], "answer": "5"}', "line 2, field 'prompt'",
                 "expected a string", "got a number"),
        evaluation_case(b'{"prompt": 5, "answer": "5"}', "line 2, field 'prompt'", "expected a string", "got a number"),
    ),
    # Test files have no rationales, so the Evaluate case puts a wrong type in the "answer" field instead.
    "wrong container type": (
        training_case(b'{"prompt": "Solve 1 + 1", "rationales": "1 + 1 = 2", "answer": "2"}',
                 "line 2, field 'rationales'", "expected a list of strings", "got a string"),
        evaluation_case(b'{"prompt": "What is 1 + 1?", "answer": ["2"]}', "line 2, field 'answer'",
                  "expected a string or a number", "got a list"),
    ),
    "answer is null": (
        training_case(b'{"prompt": "Solve 1 + 1", "rationales": [], "answer": null}', "line 2, field 'answer'",
                 "expected a string", "got null"),
        evaluation_case(b'{"prompt": "What is 1 + 1?", "answer": null}', "line 2, field 'answer'",
                  "expected a string or a number", "got null"),
    ),
    "missing fields": (
        training_case(b'{"prompt": "Solve 1 + 1"}', "line 2, field 'rationales'", "missing"),
        evaluation_case(b'{"prompt": "What is 1 + 1?"}', "line 2, field 'answer'", "missing"),
    ),
    "broken JSON": (
        training_case(b'{"prompt": "Solve 1 + 1", "answer": ', "line 2", "invalid JSON"),
        evaluation_case(b'{"prompt": "What is 1 + 1?", "answer": ', "line 2", "invalid JSON"),
    ),
    "invalid UTF-8": (
        training_case(b'{"prompt": "caf\xe9 au lait", "rationales": [], "answer": "1"}', "line 2", "invalid UTF-8"),
        evaluation_case(b'{"prompt": "caf\xe9 au lait", "answer": "1"}', "line 2", "invalid UTF-8"),
    ),
    "huge line": (
        training_case(HUGE_LINE, "line 2", "over the limit of"),
        evaluation_case(HUGE_LINE.replace(b', "rationales": []', b""), "line 2", "over the limit of"),
    ),
    "random bytes": whole_file(random.Random(0).randbytes(4096), "not a text JSONL file", "binary data"),
    "PNG header": whole_file(b"\x89PNG\r\n\x1a\n" + bytes(64), "not a text JSONL file", "PNG image"),
    "empty file": whole_file(b"", "the file is empty"),
    "blank lines": whole_file(b"\n   \n\t\r\n\n", "only blank lines"),
}

TABS = ("finetune", "evaluate")


def upload(tmp_path, name: str, content: bytes):
    path = tmp_path / (re.sub(r"\W+", "-", name) + ".jsonl")
    path.write_bytes(content)
    return handle_file(str(path))


def check_message(message: str, expected: Expected) -> None:
    assert_no_traceback(message)
    assert get_upload_folder() not in message  # the server's upload folder stays hidden
    if expected.location is None:
        assert not re.search(r"\bline \d", message), f"a whole-file problem names a line: {message!r}"
    else:
        assert expected.location in message
    for problem in expected.problems:
        assert problem in message


def uploads_in(runtime: Runtime) -> set:
    return set(runtime.uploads_dir.glob("*")) if runtime.uploads_dir.is_dir() else set()


@pytest.mark.parametrize("tab", TABS)
@pytest.mark.parametrize("case", list(BAD_UPLOADS))
def test_bad_upload_gets_clear_message(client, runtime, reference, tmp_path, case, tab):
    expected = BAD_UPLOADS[case][TABS.index(tab)]
    file = upload(tmp_path, case, expected.content)
    uploads_before = uploads_in(runtime)

    if tab == "finetune":
        report, preview = client.predict(*arguments(client, "/finetune_validate", ft_upload=file, ft_mode="stepwise"),
                                         api_name="/finetune_validate")
        check_message(report, expected)
        assert not preview["data"]
    else:
        with pytest.raises(AppError) as raised:
            client.predict(*arguments(client, "/evaluate_data", eval_upload=file, eval_dataset=None),
                           api_name="/evaluate_data")
        check_message(str(raised.value), expected)

    assert uploads_in(runtime) == uploads_before  # a rejected file is not kept
    assert_still_serving(client, reference)


def test_huge_line_message_tells_size_from_limit(client, tmp_path):
    file = upload(tmp_path, "huge", BAD_UPLOADS["huge line"][0].content)
    report, _ = client.predict(*arguments(client, "/finetune_validate", ft_upload=file), api_name="/finetune_validate")
    sizes = re.search(r"the line is (.+?), over the limit of (.+?) per line", report)
    assert sizes, report
    line_size, limit = sizes.groups()
    assert line_size != limit  # "1.0 MiB, over the limit of 1.0 MiB" would not tell the reader by how much


def test_bom_and_crlf_upload_is_accepted(client, runtime, reference, tmp_path):
    bom = b"\xef\xbb\xbf"
    training_file = upload(tmp_path, "bom training", bom + TRAINING_LINE + b"\r\n" + TRAINING_LINE + b"\r\n")
    report, preview = client.predict(*arguments(client, "/finetune_validate", ft_upload=training_file,
                                                ft_mode="whole"), api_name="/finetune_validate")
    assert "2 records → 2 training items" in report
    assert [row[1] for row in preview["data"]] == ["Solve 3 + 4", "Solve 3 + 4"]

    test_data = upload(tmp_path, "bom test", bom + TEST_LINE + b"\r\n" + TEST_LINE + b"\r\n")
    description = client.predict(*arguments(client, "/evaluate_data", eval_upload=test_data, eval_dataset=None),
                                 api_name="/evaluate_data")
    assert "2 items" in description
    assert "detected format: seed" in description
    assert_still_serving(client, reference)


# --- Sampler settings --------------------------------------------------------------------------

# Each case: the settings changed from GOOD_SETTINGS, the setting the message must name, and the
# rejected value as the message must show it.
BAD_SETTINGS = {
    "zero steps": ({"steps": 0}, "steps", "0"),
    "negative steps": ({"steps": -3}, "steps", "-3"),
    "zero block_length": ({"block_length": 0}, "block_length", "0"),
    "block longer than generation": ({"block_length": 17}, "block_length", "17"),
    "gen_length below range": ({"gen_length": 0}, "gen_length", "0"),
    "gen_length above range": ({"gen_length": 5000}, "gen_length", "5000"),
    "negative temperature": ({"temperature": -0.5}, "temperature", "-0.5"),
    "negative cfg_scale": ({"cfg_scale": -1.0}, "cfg_scale", "-1"),
    "unknown remasking": ({"remasking": "highest"}, "remasking", "highest"),
    "unknown cache": ({"cache": "triple"}, "cache", "triple"),
    "threshold above 1": ({"threshold": 1.5}, "threshold", "1.5"),
    "negative threshold": ({"threshold": -0.2}, "threshold", "-0.2"),
    "constraint offset not a number": ({"constraints": "x:Once"}, "constraint", "x:Once"),
    "constraint without word": ({"constraints": "5"}, "constraint", "5"),
    "constraint past the end": ({"constraints": "999:word"}, "constraint", "999"),
    "negative constraint offset": ({"constraints": "-1:word"}, "constraint", "-1"),
    "duplicate constraint offsets": ({"constraints": "0:Once, 0:upon"}, "constraint", "0"),
    "constraint runs past the end": ({"constraints": "15:Once upon a time"}, "constraint", "15"),
    "steps not a number": ({"steps": "many"}, "steps", "many"),
    "gen_length missing": ({"gen_length": None}, "gen_length", "None"),
    "temperature not a number": ({"temperature": "hot"}, "temperature", "hot"),
    "cfg_scale not a number": ({"cfg_scale": "strong"}, "cfg_scale", "strong"),
    "threshold not a number": ({"threshold": "high"}, "threshold", "high"),
    "seed not a number": ({"seed": "lucky"}, "seed", "lucky"),
    "seed not whole": ({"seed": "2.5"}, "seed", "2.5"),
}


@pytest.mark.parametrize("case", list(BAD_SETTINGS))
def test_bad_setting_is_named(client, reference, case):
    changes, setting, value = BAD_SETTINGS[case]
    settings = {**GOOD_SETTINGS, **changes}
    with pytest.raises(AppError) as raised:
        client.predict(*arguments(client, "/generate", prompt=PROMPT, **settings), api_name="/generate")
    message = str(raised.value)
    assert_no_traceback(message)
    assert setting in message
    assert value in message
    assert_still_serving(client, reference)


def test_threshold_zero_turns_threshold_off(client, reference):
    # The page's slider sends 0 for "no threshold", although SamplerConfig itself rejects 0.
    frame, text, *_ = client.predict(*arguments(client, "/generate", prompt=PROMPT, **{**GOOD_SETTINGS,
                                                                                      "threshold": 0.0}),
                                     api_name="/generate")
    assert text == reference
