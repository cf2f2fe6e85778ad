"""Server-side text in English and Korean: language choice, the catalogue and library messages."""

import json
import re
import string
from pathlib import Path
from types import SimpleNamespace

import pytest

from llada_cot.data import DataFileError, read_test_file, read_training_file
from llada_cot.sampling import SamplerConfig, parse_constraints
from llada_cot.ui import messages
from llada_cot.ui.messages import MESSAGES, UNTRANSLATED_LEAD, localize, request_language

HANGUL = re.compile("[\uac00-\ud7a3]")


def request(header: str) -> SimpleNamespace:
    return SimpleNamespace(headers={"accept-language": header})


@pytest.mark.parametrize("header, expected", [
    ("ko-KR,ko;q=0.9,en-US;q=0.8,en;q=0.7", "ko"),
    ("en-US,en;q=0.9,ko;q=0.8", "en"),
    ("fr-FR,fr;q=0.9,ko;q=0.5", "ko"),
    ("en;q=0.2, ko;q=0.9", "ko"),
    ("de-DE", "en"),
    ("", "en"),
    ("ko;q=abc, en", "en"),
])
def test_language_follows_accept_language(header, expected):
    assert request_language(request(header)) == expected


def test_language_english_outside_events():
    assert request_language() == "en"
    assert request_language(SimpleNamespace(headers=None)) == "en"


def fields(template: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(template) if name}


@pytest.mark.parametrize("key", sorted(MESSAGES))
def test_message_has_korean_form(key):
    english, korean = MESSAGES[key]
    assert fields(korean) <= fields(english), "the Korean text uses a value the English one is not given"
    if re.search("[A-Za-z]{3}", english.replace("NFE", "").replace("LoRA", "")) and key not in ("bad_setting",):
        assert HANGUL.search(korean), f"{key} has no Korean text"


def test_text_uses_request_language(monkeypatch):
    monkeypatch.setattr(messages, "request_language", lambda request=None: "ko")
    assert messages.text("prompt_empty") == MESSAGES["prompt_empty"][1]
    assert "배치 크기" in messages.text("not_whole", label="Batch size", value="x")
    monkeypatch.setattr(messages, "request_language", lambda request=None: "en")
    assert messages.text("not_whole", label="Batch size", value="x") == "Batch size must be a whole number, got 'x'."


def library_messages() -> list[str]:
    """Messages the library raises for a corpus of bad settings and files, plus the sampler's notes."""
    found = []
    bad_settings = [dict(steps=0), dict(gen_length=-4), dict(block_length=64, gen_length=32, steps=32),
                    dict(temperature=-1), dict(cfg_scale=-0.5), dict(remasking="greedy"), dict(seed=1.5),
                    dict(threshold=1.5), dict(threshold=0), dict(cache="full"), dict(early_stop="yes"),
                    dict(constraints="x:Once"), dict(constraints="5"), dict(constraints="999:word"),
                    dict(constraints="1:a, 1:b"), dict(constraints="-1:a")]
    for settings in bad_settings:
        with pytest.raises(ValueError) as caught:
            config = SamplerConfig(**settings).validate()
            parse_constraints(config.constraints, config.gen_length)
        found.append(str(caught.value))
    for settings in [dict(gen_length=40, block_length=16, steps=40), dict(threshold=0.9, cache="dual", early_stop=True),
                     dict(steps=2, gen_length=64, block_length=16), dict(steps=10, gen_length=64, block_length=16,
                                                                          cache="prefix")]:
        found.extend(SamplerConfig(**settings).validate().notes)
    bad_files = [b"", b"\n\n", b"[1]\n", b'{"prompt": 5, "rationales": "x", "answer": null}\n', b'{"prompt": "a"\n',
                 b"\x89PNG\r\n\x1a\n" + bytes(range(64)), b'{"prompt": "a", "answer": "1"}\n\xff\xfe\n',
                 b'{"question": "a"}\n', b'{"prompt": "", "rationales": [1], "answer": "1"}\n',
                 b'{"prompt": "a", "answer": "1"} {"prompt": "b"}\n', b'{"problem": "a", "answer": "1"}\n']
    for data in bad_files:
        for reader in (read_training_file, read_test_file):
            with pytest.raises(DataFileError) as caught:
                reader(data)
            found.append(str(caught.value))
    with pytest.raises(DataFileError) as caught:  # a valid test file given for training
        read_training_file(b'{"prompt": "What is 2 + 2?", "answer": "4"}\n' * 2)
    found.append(str(caught.value))
    return found


@pytest.mark.parametrize("message", library_messages())
def test_library_message_has_korean_form(message):
    korean = localize(message, "ko")
    assert UNTRANSLATED_LEAD not in korean, korean
    assert korean.count('\\"') <= message.count('\\"'), "a template left an escaped quote in the text"
    for line in korean.splitlines():
        if line.strip():
            assert HANGUL.search(line), line
    # Numbers the reader must act on (line numbers, values) survive the translation.
    for number in re.findall(r"\bline (\d+)", message):
        assert f"{number}번째 줄" in korean
    assert localize(message, "en") == message


def test_unknown_message_keeps_english():
    korean = localize("something new went wrong with value 42.", "ko")
    assert korean.startswith(UNTRANSLATED_LEAD)
    assert "value 42" in korean


@pytest.fixture(scope="module")
def server(bundled, tmp_path_factory):
    from llada_cot.ui.runtime import Runtime
    from page_api import serve

    with serve(Runtime(loaded=bundled, workspace=tmp_path_factory.mktemp("workspace"))) as client:
        yield client.src


@pytest.mark.parametrize("language, expected", [("ko-KR,ko;q=0.9,en;q=0.8", "ko"), ("en-US,en;q=0.9", "en")])
def test_page_errors_follow_browser_language(server, bundled, language, expected):
    from gradio_client import Client

    client = Client(server, verbose=False, headers={"Accept-Language": language})
    defaults = bundled.sampler_defaults
    settings = [defaults["gen_length"], defaults["steps"], defaults["block_length"], 0.0, 0.0, "low_confidence"]
    errors = []
    for prompt, values in [("  ", settings), ("What is 2 + 2?", [defaults["gen_length"], 0, *settings[2:]])]:
        with pytest.raises(Exception) as caught:
            client.predict(prompt, *values, api_name="/generate")
        errors.append(str(caught.value))
    assert "steps" in errors[1]
    for error in errors:
        assert bool(HANGUL.search(error)) == (expected == "ko"), error
        assert "Traceback" not in error


@pytest.mark.parametrize("language", ["ko-KR,ko;q=0.9", "en-US,en;q=0.9"])
def test_training_preview_rows_in_both_languages(server, language):
    from gradio_client import Client

    client = Client(server, verbose=False, headers={"Accept-Language": language})
    _, preview = client.predict(None, "demo_train.jsonl", "stepwise", api_name="/finetune_validate")
    first_line = (Path(__file__).resolve().parents[1] / "datasets" / "demo_train.jsonl").open().readline()
    prompt = json.loads(first_line)["prompt"]
    assert len(preview["data"]) == 20
    assert preview["data"][0][:3] == [1, prompt, 1]
    assert bool(HANGUL.search(" ".join(preview["headers"]))) == language.startswith("ko")


def fine_tune_messages() -> list[str]:
    from llada_cot.training import FineTuneConfig

    found = []
    for settings in [dict(mode="all"), dict(lora_r=0), dict(lora_dropout=1.0), dict(target_modules=()),
                     dict(learning_rate=2.0), dict(max_steps=None, epochs=0), dict(warmup_ratio=-0.1),
                     dict(lr_scheduler="step"), dict(weight_decay=-1.0), dict(gradient_checkpointing="yes"),
                     dict(max_steps=0), dict(batch_size=0)]:
        with pytest.raises(ValueError) as caught:
            FineTuneConfig(**settings).validate()
        found.append(str(caught.value))
    return found


@pytest.mark.parametrize("message", fine_tune_messages())
def test_fine_tune_message_has_korean_form(message):
    korean = localize(message, "ko")
    assert UNTRANSLATED_LEAD not in korean, korean
    assert HANGUL.search(korean)


def test_lora_target_message_has_korean_form(random_loaded):
    from llada_cot.training import check_lora_targets

    with pytest.raises(ValueError) as caught:
        check_lora_targets(random_loaded.model, ["q_proj", "o_proj"])
    korean = localize(str(caught.value), "ko")
    assert UNTRANSLATED_LEAD not in korean
    assert "'o_proj'" in korean
    assert "attn_out" in korean


def test_unboxed_answer_warning_in_korean():
    warning = read_training_file(b'{"prompt": "a", "rationales": [], "answer": "3"}\n').warnings[0]
    korean = localize(warning, "ko")
    assert korean.startswith("답 1개에 \\boxed{}가 없습니다(처음은 1번째 줄).")
    assert '"\\\\boxed{7}"' in korean
    assert UNTRANSLATED_LEAD not in korean


@pytest.fixture
def korean_request():
    from gradio.context import LocalContext

    token = LocalContext.request.set(request("ko-KR,ko;q=0.9"))
    yield
    LocalContext.request.reset(token)


def test_job_lines_and_plot_in_korean(korean_request):
    from llada_cot.ui import evaluate, finetune

    training = {"description": "adapter demo on ten.jsonl", "request": {"adapter": "demo", "data_path": "/w/ten.jsonl",
                                                                         "mode": "stepwise"}}
    assert finetune.job_description(training) == "어댑터 demo (학습 파일 ten.jsonl)"
    figure = finetune.loss_figure([{"step": 1, "loss": 2.0, "learning_rate": 1e-3}])
    assert figure.layout.xaxis.title.text == "옵티마이저 스텝"
    assert [trace.name for trace in figure.data] == ["손실", "학습률"]

    request_fields = {"run": "eval-1", "file": "demo_test.jsonl", "items": 100}
    with_adapter = {"description": "", "request": {**request_fields, "adapter": "cents"}}
    without = {"description": "", "request": {**request_fields, "adapter": None}}
    assert evaluate.job_description(with_adapter) == "eval-1: demo_test.jsonl, 항목 100개, 어댑터 cents"
    assert evaluate.job_description(without) == "eval-1: demo_test.jsonl, 항목 100개, 기본 모델"


def test_job_lines_in_english():
    from llada_cot.ui import evaluate, finetune

    training = {"description": "", "request": {"adapter": "demo", "data_path": "/w/ten.jsonl", "mode": "whole"}}
    assert finetune.job_description(training) == "adapter demo on ten.jsonl"
    evaluation = {"description": "", "request": {"run": "eval-1", "file": "t.jsonl", "items": 5, "adapter": "cents"}}
    assert evaluate.job_description(evaluation) == "eval-1: t.jsonl, 5 items, adapter cents"


@pytest.mark.parametrize("line", ['{"prompt": }', '{"prompt": "a" "b"}', '{"prompt" "a"}', "{'prompt': 'a'}",
                                  '{"prompt": "a', '{"prompt": "a\tb"}', '{"prompt": "\\q"}', '{"a": 1} x'])
def test_json_decoder_message_in_korean(tmp_path, line):
    path = tmp_path / "bad.jsonl"
    path.write_text(line + "\n", encoding="utf-8")
    with pytest.raises(DataFileError) as caught:
        read_training_file(path)
    korean = localize(str(caught.value.errors[0]), "ko")
    assert "JSON 형식이 잘못되었습니다" in korean
    assert not re.search(r"Expecting|Unterminated|Invalid|Extra data", korean), korean
