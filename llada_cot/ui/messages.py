"""Text the server writes at run time, in the reader's language.

Gradio translates labels and help text in the browser (`llada_cot.ui.i18n`),
but error popups and the Markdown the server composes (status lines, reports,
summaries) are plain strings by the time they reach the page. They are
therefore written here in English and Korean, and the language comes from the
Accept-Language header of the request being served, which is the browser
language that Gradio's own translation starts from.

Messages raised by the library (`SamplerConfig.validate`, the data-file
checks, `FineTuneConfig.validate`) stay English, because the CLI and the logs
use them too. `localize` translates the ones a page can show.
"""

from __future__ import annotations

import re

import gradio as gr
from gradio.context import LocalContext

LANGUAGES = ("en", "ko")
DEFAULT_LANGUAGE = "en"


def request_language(request: gr.Request | None = None) -> str:
    """Return the first supported language of the request's Accept-Language header, else English.

    Without `request`, the request of the event being handled is used. Outside
    an event (the CLI, tests calling functions directly) the result is English.
    """
    if request is None:
        # Gradio keeps the request of the running event in a context variable, so
        # helpers deep in a handler need not take it as a parameter.
        request = LocalContext.request.get(None)
    headers = getattr(request, "headers", None) or {}
    header = headers.get("accept-language", "") if hasattr(headers, "get") else ""
    ranked = []
    for index, part in enumerate(header.split(",")):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                quality = 0.0
        ranked.append((-quality, index, tag.strip().lower().split("-")[0]))
    for _, _, language in sorted(ranked):
        if language in LANGUAGES:
            return language
    return DEFAULT_LANGUAGE


# Each key maps to its English and Korean text. `text` fills in the `{name}` fields.
MESSAGES: dict[str, tuple[str, str]] = {
    # Playground and Compare
    "prompt_empty": ("The prompt is empty; type a problem or pick an example.",
                     "문제가 비어 있습니다. 문제를 입력하거나 예시를 고르세요."),
    "no_step": ("The sampler ran no step; check the settings.",
                "샘플러가 스텝을 하나도 실행하지 않았습니다. 설정을 확인하세요."),
    "adapter_load_failed": ("Could not load adapter {adapter!r}: {error}",
                            "어댑터 {adapter!r}를 불러오지 못했습니다: {error}"),
    "model_load_failed": ("Could not load model {model!r}: {error}",
                          "모델 {model!r}를 불러오지 못했습니다: {error}"),
    "model_not_allowed": ("The model {model!r} is not on this server's list ({allowed}); pick one from the list. "
                          "The operator can allow more with --allow-model.",
                          "모델 {model!r}는 이 서버의 허용 목록({allowed})에 없습니다. 목록에서 고르세요. "
                          "운영자는 --allow-model로 목록을 넓힐 수 있습니다."),
    "base_model": ("base model", "기본 모델"),
    "key_joiner": (" and ", " 및 "),
    "training_job": ("adapter {adapter} on {file}", "어댑터 {adapter} (학습 파일 {file})"),
    "evaluation_job": ("{run}: {file}, {items} items, {model}", "{run}: {file}, 항목 {items}개, {model}"),
    "adapter_named": ("adapter {adapter}", "어댑터 {adapter}"),
    "plot_loss": ("loss", "손실"),
    "plot_learning_rate": ("learning rate", "학습률"),
    "plot_step": ("optimizer step", "옵티마이저 스텝"),
    "plot_sft_loss": ("LLaDA SFT loss", "LLaDA SFT 손실"),
    "stats": ("**NFE** {nfe} · **time** {seconds:.2f} s · **generated tokens/s** {speed:.1f} ({tokens} tokens)",
              "**NFE** {nfe} · **시간** {seconds:.2f}초 · **초당 생성 토큰** {speed:.1f} (토큰 {tokens}개)"),
    "stopped_early": ("Stopped before the last step; masked positions remain.",
                      "마지막 스텝 전에 중지했습니다. 마스크된 위치가 남아 있습니다."),
    "compare_table": ("| | A | B |\n|---|---|---|\n| NFE | {nfe_a} | {nfe_b} |\n"
                      "| time (s) | {time_a:.2f} | {time_b:.2f} |\n"
                      "| generated tokens/s | {speed_a:.1f} | {speed_b:.1f} |\n"
                      "| boxed answer | {answer_a} | {answer_b} |",
                      "| | A | B |\n|---|---|---|\n| NFE | {nfe_a} | {nfe_b} |\n"
                      "| 시간(초) | {time_a:.2f} | {time_b:.2f} |\n"
                      "| 초당 생성 토큰 | {speed_a:.1f} | {speed_b:.1f} |\n"
                      "| 박스 정답 | {answer_a} | {answer_b} |"),
    "speedup_same": ("**Speed-up of B over A:** {nfe_ratio:.2f}x fewer forward passes, {time_ratio:.2f}x less time; "
                     "same answers.",
                     "**A 대비 B의 속도 향상:** forward pass {nfe_ratio:.2f}배 감소, 시간 {time_ratio:.2f}배 단축, "
                     "답은 같습니다."),
    "speedup_different": ("**Speed-up of B over A:** {nfe_ratio:.2f}x fewer forward passes, {time_ratio:.2f}x less "
                          "time; different answers.",
                          "**A 대비 B의 속도 향상:** forward pass {nfe_ratio:.2f}배 감소, 시간 {time_ratio:.2f}배 "
                          "단축, 답이 다릅니다."),
    # Sampler and page settings
    "bad_setting": ("{message}", "설정 오류: {message}"),
    "number_empty": ("{label} is empty; enter a number.", "{label} 값이 비어 있습니다. 숫자를 입력하세요."),
    "not_a_number": ("{label} must be a number, got {value!r}.", "{label} 값은 숫자여야 합니다. 입력값: {value!r}."),
    "not_whole": ("{label} must be a whole number, got {value!r}.", "{label} 값은 정수여야 합니다. 입력값: {value!r}."),
    "whole_at_least": ("{label} must be a whole number of at least {minimum}{upper}, got {value!r}.",
                       "{label} 값은 {minimum} 이상{upper}의 정수여야 합니다. 입력값: {value!r}."),
    "out_of_range": ("{setting} must be between {minimum} and {maximum} on this page, got {value!r}.",
                     "{setting} 값은 이 페이지에서 {minimum}~{maximum} 범위여야 합니다. 입력값: {value!r}."),
    "at_most": (" and at most {maximum}", " {maximum} 이하"),
    # Fine-tune tab
    "bundled_training_unknown": ("{name!r} is not one of the bundled training files; pick one from the list.",
                                 "{name!r}는 함께 제공되는 학습 파일이 아닙니다. 목록에서 고르세요."),
    "training_mode_unknown": ("Unknown training mode {mode!r}; pick {choices}.",
                              "알 수 없는 학습 방식 {mode!r}입니다. {choices} 중에서 고르세요."),
    "no_training_file": ("Upload a training JSONL file or pick a bundled one.",
                         "학습용 JSONL 파일을 올리거나 함께 제공되는 파일을 고르세요."),
    "file_unusable": ("**The file cannot be used** ({count} {noun}):", "**이 파일은 쓸 수 없습니다** (오류 {count}개):"),
    "error_noun": ("error", "오류"),
    "errors_noun": ("errors", "오류"),
    "more_errors": ("… and {count} more. Fix the listed ones and upload the file again.",
                    "… 외 {count}개. 위의 오류를 고친 뒤 파일을 다시 올리세요."),
    "training_report": ("**{records} {record_noun} → {items} training items** ({mode} mode) in {file}.",
                        "**{file}: 레코드 {records}개 → 학습 항목 {items}개** ({mode} 방식)."),
    "record": ("record", "레코드"),
    "records": ("records", "레코드"),
    "pick_a_layer": ("Pick at least one layer for LoRA.", "LoRA를 붙일 레이어를 하나 이상 고르세요."),
    "enter_rank": ("Enter a LoRA rank to see the number of trainable parameters.",
                   "LoRA 랭크를 입력하면 학습할 파라미터 수가 표시됩니다."),
    "lora_parameters": ("LoRA trains **{added:,}** parameters; the base model's {total:,} stay frozen "
                        "({share:.2f}% of all parameters are trained).",
                        "LoRA는 파라미터 **{added:,}**개를 학습하고, 기본 모델의 {total:,}개는 고정됩니다 "
                        "(전체 파라미터의 {share:.2f}%를 학습)."),
    "no_valid_training_file": ("No valid training file yet; upload one or pick a bundled one, and fix any errors "
                               "listed.",
                               "아직 쓸 수 있는 학습 파일이 없습니다. 파일을 올리거나 제공되는 파일을 고르고, "
                               "표시된 오류를 고치세요."),
    "training_file_unusable": ("The training file cannot be used: {problem}", "학습 파일을 쓸 수 없습니다: {problem}"),
    "adapter_exists": ("An adapter named {name!r} already exists. Tick Resume to continue its run, tick Replace to "
                       "train it again, or choose another name.",
                       "이름이 {name!r}인 어댑터가 이미 있습니다. 이어서 학습하려면 '이어서 하기'를, 다시 학습하려면 "
                       "'교체'를 체크하거나 다른 이름을 고르세요."),
    "no_training_job": ("No fine-tuning job is running.", "실행 중인 파인튜닝 작업이 없습니다."),
    "stopping_training": ("Stopping after the current step; the adapter is saved at that step.",
                          "현재 스텝이 끝나면 멈추고, 그 스텝의 어댑터를 저장합니다."),
    "training_started": ("Fine-tuning started: {description}.", "파인튜닝을 시작했습니다: {description}."),
    "no_training_yet": ("No fine-tuning job has run since the server started.",
                        "서버가 시작된 뒤 실행된 파인튜닝 작업이 없습니다."),
    "status_running": ("Running", "실행 중"),
    "status_done": ("Done", "완료"),
    "status_stopped": ("Stopped", "중지됨"),
    "status_failed": ("Failed", "실패"),
    "status_queued": ("Queued", "대기 중"),
    "training_progress": ("step {done} of {total} ({percent:.0f}%) · {elapsed} elapsed",
                          "스텝 {done}/{total} ({percent:.0f}%) · {elapsed} 경과"),
    "time_left": (" · about {left} left", " · 약 {left} 남음"),
    "loading_model": ("loading the model · {elapsed} elapsed", "모델을 불러오는 중 · {elapsed} 경과"),
    "adapter_saved": ("Adapter **{adapter}** saved at step {step}: {trainable:,} trainable of {total:,} parameters, "
                      "final loss {loss}. Pick it in the adapter list of the Playground or Evaluate tab.",
                      "어댑터 **{adapter}**를 스텝 {step}에서 저장했습니다: 파라미터 {total:,}개 중 {trainable:,}개 "
                      "학습, 마지막 손실 {loss}. 플레이그라운드나 평가 탭의 어댑터 목록에서 고르세요."),
    "resume_hint": ("Tick Resume and start again to continue from this step.",
                    "'이어서 하기'를 체크하고 다시 시작하면 이 스텝부터 이어집니다."),
    "job_error": ("Error: {error}", "오류: {error}"),
    "job_busy": ("Another {kind} job ({description}) is already running, and only one runs at a time; wait for it "
                 "to finish or stop it first.",
                 "다른 {kind} 작업({description})이 이미 실행 중이며 한 번에 하나만 실행됩니다. 끝날 때까지 기다리거나 "
                 "먼저 중지하세요."),
    "kind_train": ("fine-tuning", "파인튜닝"),
    "kind_evaluate": ("evaluation", "평가"),
    # Evaluate tab
    "bundled_test_unknown": ("The bundled test set {name!r} does not exist; pick one from the list.",
                             "내장 테스트 세트 {name!r}가 없습니다. 목록에서 고르세요."),
    "no_test_file": ("No test file: upload a JSONL file or pick a bundled test set.",
                     "테스트 파일이 없습니다. JSONL 파일을 올리거나 내장 테스트 세트를 고르세요."),
    "test_file_unusable": ("The test file {name} cannot be used ({count} {noun}):",
                           "테스트 파일 {name}을(를) 쓸 수 없습니다 (오류 {count}개):"),
    "test_description": ("**{name}**: {count} {noun}, detected format: {format}.",
                         "**{name}**: 항목 {count}개, 감지된 형식: {format}."),
    "item": ("item", "항목"),
    "items": ("items", "항목"),
    "run_name_invalid": ("The run name {name!r} is invalid; use 1 to 64 letters, digits, '.', '_' or '-', starting "
                         "with a letter or digit.",
                         "실행 이름 {name!r}는 쓸 수 없습니다. 영문자나 숫자로 시작하는 1~64자의 영문자, 숫자, '.', "
                         "'_', '-'를 쓰세요."),
    "adapter_missing": ("The adapter {adapter!r} is not in the workspace; press refresh and pick one from the list, "
                        "or leave it empty for the base model.",
                        "어댑터 {adapter!r}가 작업 폴더에 없습니다. 새로고침을 누르고 목록에서 고르거나, 기본 모델을 "
                        "쓰려면 비워 두세요."),
    "run_exists": ("A run named {name!r} already exists; pick another name, or tick 'Resume' to continue it.",
                   "이름이 {name!r}인 실행이 이미 있습니다. 다른 이름을 고르거나 '이어서 실행'을 체크하세요."),
    "progress_line": ("{prefix}{done} / {total} items · {status}", "{prefix}{done} / {total} 항목 · {status}"),
    "no_graded": ("No graded items yet ({excluded} excluded).", "아직 채점된 항목이 없습니다(제외 {excluded}개)."),
    "accuracy_line": ("**Accuracy** {accuracy:.1%} (95% CI {low:.1%} to {high:.1%}) · {correct}/{n} correct · "
                      "{excluded} excluded · mean NFE {nfe:.1f} · {speed} generated tokens/s",
                      "**정확도** {accuracy:.1%} (95% 신뢰구간 {low:.1%}~{high:.1%}) · {n}개 중 {correct}개 정답 · "
                      "제외 {excluded}개 · 평균 NFE {nfe:.1f} · 초당 생성 토큰 {speed}"),
    "verdict_excluded": ("excluded", "제외"),
    "verdict_excluded_long": ("excluded (gold answer cannot be parsed)", "제외 (정답을 해석할 수 없음)"),
    "verdict_correct": ("✓ correct", "✓ 정답"),
    "verdict_incorrect": ("✗ incorrect", "✗ 오답"),
    "eval_failed_status": ("failed: {error}", "실패: {error}"),
    "eval_stopped_status": ("stopped; run again with the same name and 'Resume' ticked to continue",
                            "중지됨. 같은 이름으로 '이어서 실행'을 체크하고 다시 실행하면 이어집니다"),
    "eval_failed": ("The evaluation failed: {error}", "평가에 실패했습니다: {error}"),
    "item_details": ("**Line {line}** · {verdict} · gold `{gold}` · model `{model}` · NFE {nfe}\n\n"
                     "**Prompt:** {prompt}\n\n**Output:** {output}",
                     "**{line}번째 줄** · {verdict} · 정답 `{gold}` · 모델 `{model}` · NFE {nfe}\n\n"
                     "**문제:** {prompt}\n\n**출력:** {output}"),
    "no_eval_running": ("No evaluation is running on this page.", "이 페이지에서 실행 중인 평가가 없습니다."),
    "no_run_picked": ("No run picked; pick a finished run from the list (press refresh after a new run).",
                      "선택한 실행이 없습니다. 목록에서 끝난 실행을 고르세요(새 실행 뒤에는 새로고침)."),
    "run_has_no_results": ("The run {name!r} has no results; pick another run.",
                           "실행 {name!r}에 결과가 없습니다. 다른 실행을 고르세요."),
    "no_results_shown": ("No results are shown yet; run an evaluation or open a finished run.",
                         "아직 표시된 결과가 없습니다. 평가를 실행하거나 끝난 실행을 여세요."),
    "item_missing": ("Item {number} is not in {name}, which has {count} items; pick a row again.",
                     "항목 {number}은(는) {name}에 없습니다({count}개 항목). 행을 다시 고르세요."),
    "same_runs": ("Both sides are {name!r}; pick two different runs.", "양쪽 모두 {name!r}입니다. 서로 다른 실행을 고르세요."),
    "runs_compared": ("{common} items in both runs, {differing} of them differ in correctness or answer; "
                      "{only_a} only in A, {only_b} only in B.",
                      "두 실행에 모두 있는 항목 {common}개 중 {differing}개가 정답 여부나 답이 다릅니다. "
                      "A에만 {only_a}개, B에만 {only_b}개."),
}


# Korean names of the page's number fields, for messages that name the field.
KOREAN_LABELS = {
    "Batch size": "배치 크기", "Limit": "개수 제한", "Max steps": "최대 스텝 수", "LoRA rank": "LoRA 랭크",
    "LoRA alpha": "LoRA alpha", "LoRA dropout": "LoRA 드롭아웃", "Learning rate": "학습률", "Epochs": "에포크",
    "Gradient accumulation": "그래디언트 누적", "Warmup ratio": "워밍업 비율",
    "Checkpoint interval": "체크포인트 간격", "Seed": "시드", "Response padding": "응답 패딩 길이",
}


# Korean column names of the page's tables; the English names are the data's.
KOREAN_HEADERS = {
    "result": "결과", "prompt": "문제", "gold answer": "정답", "model answer": "모델 답", "line": "줄",
    "answer A": "A의 답", "correct A": "A 정답 여부", "answer B": "B의 답", "correct B": "B 정답 여부",
    "n_rationales": "풀이 단계 수", "answer": "정답",
}


def headers(names: list[str]) -> list[str]:
    """Return table column names in the current request's language."""
    if request_language() != "ko":
        return list(names)
    return [KOREAN_HEADERS.get(name, name) for name in names]


def text(key: str, **values) -> str:
    """Return message `key` in the current request's language with `values` filled in."""
    english, korean = MESSAGES[key]
    if request_language() != "ko":
        return english.format(**values)
    if "label" in values:
        values["label"] = KOREAN_LABELS.get(values["label"], values["label"])
    return korean.format(**values)


def error(key: str, **values) -> gr.Error:
    """Return a gr.Error with message `key` in the current request's language."""
    return gr.Error(text(key, **values), print_exception=False)


def library_error(error: Exception) -> gr.Error:
    """Return a gr.Error with a library exception's message in the current request's language.

    These are expected input errors, so the server log gets no traceback for them.
    """
    return gr.Error(localize(str(error)), print_exception=False)


def info(key: str, **values) -> None:
    gr.Info(text(key, **values))


def warning(key: str, **values) -> None:
    gr.Warning(text(key, **values))


# --- Library messages ------------------------------------------------------------------------

# Korean renderings of the messages the library raises, matched in full. Groups
# carry the values over. Messages without an entry get a Korean lead sentence.
_KOREAN_PATTERNS: tuple[tuple[str, str], ...] = (
    # SamplerConfig.validate
    (r"(?P<name>\w+) must be a whole number of at least 1, got (?P<value>.+)\.",
     r"\g<name> 값은 1 이상의 정수여야 합니다. 입력값: \g<value>."),
    (r"block_length=(?P<block>\d+) is longer than gen_length=(?P<gen>\d+); (?P<rest>.*)",
     r"block_length=\g<block>이(가) gen_length=\g<gen>보다 깁니다. block_length를 gen_length 이하로 줄이세요."),
    (r"temperature must be 0 \(greedy\) or positive, got (?P<value>.+)\.",
     r"temperature는 0(탐욕적 선택) 또는 양수여야 합니다. 입력값: \g<value>."),
    (r"cfg_scale must be 0 \(off\) or positive, got (?P<value>.+)\.",
     r"cfg_scale은 0(끄기) 또는 양수여야 합니다. 입력값: \g<value>."),
    (r"remasking=(?P<value>.+) is unknown; use one of (?P<choices>.+)\.",
     r"remasking=\g<value>은(는) 알 수 없는 규칙입니다. \g<choices> 중 하나를 쓰세요."),
    (r"seed must be a whole number or empty, got (?P<value>.+)\.",
     r"시드는 정수이거나 비어 있어야 합니다. 입력값: \g<value>."),
    (r"threshold must be a probability with 0 < threshold <= 1 \(0\.9 is typical\).*got (?P<value>.+?)\.",
     r"threshold는 0 < threshold <= 1인 확률이어야 합니다(보통 0.9). 입력값: \g<value>."),
    (r"cache=(?P<value>.+) is unknown; use one of (?P<choices>.+)\.",
     r"cache=\g<value>은(는) 알 수 없는 모드입니다. \g<choices> 중 하나를 쓰세요."),
    (r"(?P<name>\w+) must be True or False, got (?P<value>.+)\.",
     r"\g<name> 값은 True 또는 False여야 합니다. 입력값: \g<value>."),
    # Constraints
    (r"constraint (?P<item>.+?) is not of the form offset:word; (?P<rest>.*)",
     r"고정 단어 \g<item>이(가) 위치:단어 형식이 아닙니다. 예: 0:Once, 5:upon."),
    (r"constraint (?P<item>.+?) has offset (?P<offset>.+?), which is not (?P<rest>.*)",
     r"고정 단어 \g<item>의 위치 \g<offset>이(가) 0 이상의 정수가 아닙니다."),
    (r"constraint (?P<item>.+?) has offset (?P<offset>-?\d+), outside the generated region; (?P<rest>.*)",
     r"고정 단어 \g<item>의 위치 \g<offset>이(가) 생성 구간 밖에 있습니다. 0부터 gen_length - 1 사이로 쓰세요."),
    (r"constraints give offset (?P<offset>\d+) twice; (?P<rest>.*)",
     r"고정 단어에 위치 \g<offset>이(가) 두 번 나옵니다. 위치마다 단어 하나만 두세요."),
    (r"constraint (?P<item>\S+) needs (?P<n>\d+) tokens and runs past (?P<rest>.*)",
     r"고정 단어 \g<item>은(는) 토큰 \g<n>개가 필요해 생성 구간 끝을 넘습니다. 위치를 앞으로 옮기세요."),
    (r"constraint (?P<item>\S+) needs (?P<n>\d+) tokens and overlaps (?P<rest>.*)",
     r"고정 단어 \g<item>은(는) 토큰 \g<n>개가 필요해 다른 고정 단어와 겹칩니다. 위치를 띄우세요."),
    (r"(?P<n>\d+) answers? (?:has|have) no \\boxed\{\} \(first on line (?P<line>\d+)\)\. (?P<rest>.*)",
     r"답 \g<n>개에 \\boxed{}가 없습니다(처음은 \g<line>번째 줄). 모델은 답을 적힌 그대로 쓰도록 배우고, 평가는 출력의 "
     r'마지막 \\boxed{}를 읽으므로 "7" 대신 "\\\\boxed{7}"처럼 쓰세요.'),
    # Sampler notes
    (r"gen_length (?P<gen>\d+) is not a multiple of block_length (?P<block>\d+); the last block has (?P<last>\d+) "
     r"positions\.",
     r"gen_length \g<gen>이(가) block_length \g<block>의 배수가 아니어서 마지막 블록은 \g<last>개 위치입니다."),
    (r"threshold (?P<threshold>[\d.e-]+) is set, so steps (?P<steps>\d+) is ignored: (?P<rest>.*)",
     r"threshold \g<threshold>이(가) 설정되어 steps \g<steps>은(는) 무시됩니다. 각 스텝은 블록에서 확률이 "
     r"\g<threshold>을(를) 넘는 마스크 위치를 모두(최소 하나) 확정하므로, 스텝 수는 모델에 따라 달라집니다."),
    (r"steps (?P<steps>\d+) is fewer than the (?P<blocks>\d+) blocks; (?P<rest>.*)",
     r"steps \g<steps>이(가) 블록 수 \g<blocks>보다 적어 블록마다 한 스텝씩, 모두 \g<blocks>스텝을 실행합니다."),
    (r"steps (?P<steps>\d+) is not a multiple of the (?P<blocks>\d+) blocks; the first (?P<extra>\d+ )?blocks? gets? "
     r"one extra step\.",
     lambda m: f"steps {m['steps']}이(가) 블록 수 {m['blocks']}의 배수가 아니어서 앞의 {(m['extra'] or '1 ').strip()}개 "
               "블록이 한 스텝씩 더 받습니다."),
    (r"About (?P<n>\d+) tokens are committed per step; more than (?P<max>\d+) often (?P<rest>.*)",
     r"스텝마다 약 \g<n>개 토큰을 확정합니다. \g<max>개를 넘으면 단어나 줄이 반복되기 쉬우니 steps를 늘리세요."),
    (r"The prefix cache is an approximation: (?P<rest>.*)",
     r"prefix 캐시는 근사입니다. 블록 안에서 블록 왼쪽 위치의 key/value는 블록의 첫 스텝 값으로 유지되지만, "
     r"attention은 양방향이고 블록의 토큰은 바뀝니다."),
    (r"The dual cache also keeps (?P<rest>.*)",
     r"dual 캐시는 블록 오른쪽의 마스크 위치 key/value도 블록의 첫 스텝 값으로 유지하므로, 이후 스텝은 블록 "
     r"위치만 계산합니다."),
    (r"With the dual cache, early_stop is checked only (?P<rest>.*)",
     r"dual 캐시에서는 early_stop을 블록마다 첫 스텝에서만 확인합니다. 블록 오른쪽 위치를 예측하는 유일한 "
     r"pass이기 때문입니다."),
    # FineTuneConfig.validate and the LoRA target check
    (r"mode must be one of (?P<choices>.+), got (?P<value>.+)\.",
     r"학습 방식은 \g<choices> 중 하나여야 합니다. 입력값: \g<value>."),
    (r"(?P<name>\w+) must be an integer of at least (?P<minimum>\d+), got (?P<value>.+?) \((?P<hint>.*)\)\.",
     r"\g<name> 값은 \g<minimum> 이상의 정수여야 합니다. 입력값: \g<value>."),
    (r"(?P<name>\w+) must be at least 0 and below 1, got (?P<value>.+)\.",
     r"\g<name> 값은 0 이상 1 미만이어야 합니다. 입력값: \g<value>."),
    (r"(?P<name>\w+) must be above 0 and below 1, got (?P<value>.+?); (?P<rest>.*)",
     r"\g<name> 값은 0보다 크고 1보다 작아야 합니다(LLaDA-8B는 1e-4, 내장 tiny 모델은 약 1e-3). 입력값: \g<value>."),
    (r"epochs must be above 0 when max_steps is not set, got (?P<value>.+)\.",
     r"max_steps를 정하지 않으면 epochs는 0보다 커야 합니다. 입력값: \g<value>."),
    (r"lr_scheduler must be one of (?P<choices>.+), got (?P<value>.+)\.",
     r"lr_scheduler는 \g<choices> 중 하나여야 합니다. 입력값: \g<value>."),
    (r"weight_decay must be 0 or more, got (?P<value>.+)\.", r"weight_decay는 0 이상이어야 합니다. 입력값: \g<value>."),
    (r"(?P<name>\w+) must be true or false, got (?P<value>.+)\.",
     r"\g<name> 값은 true 또는 false여야 합니다. 입력값: \g<value>."),
    (r"target_modules must be a non-empty list of layer names such as (?P<example>.+), got (?P<value>.+)\.",
     r"target_modules는 비어 있지 않은 레이어 이름 목록이어야 합니다(예: \g<example>). 입력값: \g<value>."),
    (r"LoRA targets? (?P<names>.+?) match(?:es)? no layer of this model\. Valid targets: (?P<valid>[^.]+)\.(?P<rest>.*)",
     r"LoRA 대상 \g<names>에 맞는 레이어가 이 모델에 없습니다. 쓸 수 있는 대상: \g<valid>.\g<rest>"),
    # Adapter and run names
    (r"Adapter name (?P<rest>.*)", r"어댑터 이름 오류: \g<rest>"),
    # Data files: the location prefix of each problem, then its text
    (r"line (?P<line>\d+), field '(?P<field>[^']+)': (?P<rest>.*)", r"\g<line>번째 줄, '\g<field>' 필드: \g<rest>"),
    (r"line (?P<line>\d+): (?P<rest>.*)", r"\g<line>번째 줄: \g<rest>"),
    (r"field '(?P<field>[^']+)': (?P<rest>.*)", r"'\g<field>' 필드: \g<rest>"),
)
_TYPE_NAMES = {"a number": "숫자", "a string": "문자열", "a list": "목록", "an object": "객체", "null": "null",
               "true or false": "true/false", "a boolean": "true/false"}


def _type_name(english: str) -> str:
    return _TYPE_NAMES.get(english.strip(), english.strip())


def _missing(match: re.Match) -> str:
    hints = []
    rest = match["rest"]
    if "record without steps" in rest:
        hints.append("풀이 단계가 없는 레코드는 []를 쓰세요.")
    found = re.search(r"The line has '([^']+)', so it may only need renaming to '([^']+)'", rest)
    if found:
        hints.append(f"이 줄에는 '{found[1]}'이(가) 있으니 이름만 '{found[2]}'(으)로 바꾸면 됩니다.")
    return " ".join([f"항목이 없습니다. {match['what']}를 추가하세요.", *hints])


# Korean for the messages of Python's json decoder; a message not listed keeps its English text.
JSON_DECODER_MESSAGES = {
    "Expecting value": "값이 와야 합니다",
    "Expecting ',' delimiter": "쉼표(,)가 와야 합니다",
    "Expecting ':' delimiter": "콜론(:)이 와야 합니다",
    "Expecting property name enclosed in double quotes": "큰따옴표로 감싼 키 이름이 와야 합니다",
    "Unterminated string starting at": "닫히지 않은 문자열이 시작됩니다",
    "Invalid control character at": "문자열 안에 쓸 수 없는 제어 문자가 있습니다",
    "Invalid \\escape": "잘못된 백슬래시 이스케이프가 있습니다",
    "Extra data": "JSON 값 뒤에 다른 내용이 있습니다",
    "Illegal trailing comma before end of object": "객체의 끝 앞에 쉼표가 남아 있습니다",
    "Illegal trailing comma before end of array": "배열의 끝 앞에 쉼표가 남아 있습니다",
}


def _invalid_json(match: re.Match) -> str:
    rest = match["rest"]
    if "ends before the JSON value is complete" in rest:
        hint = "JSON 값이 끝나기 전에 줄이 끝납니다. 레코드마다 한 줄에 쓰세요."
    elif "Extra data" in match["msg"]:
        hint = "객체마다 한 줄에 쓰고 그 뒤의 내용은 지우세요."
    else:
        hint = "한 줄에 올바른 JSON 객체 하나를 쓰세요."
    problem = JSON_DECODER_MESSAGES.get(match["msg"], match["msg"])
    return f"JSON 형식이 잘못되었습니다({match['col']}번째 글자: {problem}). {hint}"


# Data-file problems, translated inside the location prefix above. A template is
# a replacement string or a function of the match.
_KOREAN_PHRASES: tuple[tuple[str, object], ...] = (
    (r"^missing\. Add (?P<what>\"[^\"]+\": (?:\"(?:[^\"\\]|\\.)*\"|\[[^\]]*\]|\{.*?\}))\.(?P<rest>.*)", _missing),
    (r"^missing on all (?P<count>\d+) lines, so this looks like a test file (?P<rest>.*)",
     r"모든 줄(\g<count>개)에 없어서 테스트 파일(prompt와 answer만 있음)로 보입니다. 학습에는 단계별 풀이가 "
     r'필요하니 각 줄에 "rationales": ["3 + 4 = 7"]을(단계가 없으면 []) 추가하세요. 테스트 파일은 평가 탭이나 '
     r"solve로 평가하세요."),
    (r"^missing\. Add the gold answer, for example (?P<example>.*)",
     r"항목이 없습니다. 정답을 추가하세요. 예: \g<example>"),
    (r"^expected a string, got (?P<type>[^.]+)\. (?P<rest>.*)",
     lambda m: f"문자열이어야 하는데 {_type_name(m['type'])}입니다. 큰따옴표로 감싸 쓰세요."),
    (r"^expected a list of strings, got (?P<type>[^.]+)\. (?P<rest>.*)",
     lambda m: f"문자열 목록이어야 하는데 {_type_name(m['type'])}입니다. 예: [\"3 + 4 = 7\"], 단계가 없으면 []."),
    (r"^expected a string or a number, got (?P<type>[^.]+)\. Write it like (?P<example>.*)",
     lambda m: f"문자열이나 숫자여야 하는데 {_type_name(m['type'])}입니다. 예: {m['example']}"),
    (r"^expected a JSON object like (?P<example>.+?), got (?P<type>[^.]+)\.(?P<rest>.*)",
     lambda m: f"JSON 객체여야 하는데 {_type_name(m['type'])}입니다. 예: {m['example']}"
               + (" 파일 전체가 JSON 배열이면 원소를 한 줄에 하나씩 쓰세요." if "array" in m["rest"] else "")),
    (r"^invalid JSON: (?P<msg>.+?) at column (?P<col>\d+)\.(?P<rest>.*)", _invalid_json),
    (r"^invalid JSON: (?P<rest>.*)", r"JSON 형식이 잘못되었습니다. 숫자는 유한한 십진수로 쓰세요."),
    (r"^the text is empty\. (?P<rest>.*)", r"텍스트가 비어 있습니다. 내용을 쓰세요."),
    (r"^the line is (?P<size>.+?), over the limit of (?P<limit>[\d.]+ \w+)(?P<rest>.*)",
     r"줄 길이가 \g<size>로 한도 \g<limit>를 넘습니다. 줄을 나누거나 줄이세요."),
    (r"^invalid UTF-8 at byte offset (?P<offset>\d+) (?P<rest>.*)",
     r"바이트 위치 \g<offset>에 잘못된 UTF-8이 있습니다. 파일을 UTF-8로 저장하세요."),
    (r"^the keys \((?P<keys>.*?)\) match no test format\. (?P<rest>.*)",
     r"키 (\g<keys>)가 어떤 테스트 형식과도 맞지 않습니다. prompt/answer, question/answer, problem/solution 중 "
     r"하나를 쓰세요."),
    (r"^the file is (?P<size>[\d.]+ \w+), over the limit of (?P<limit>[\d.]+ \w+)\. (?P<rest>.*)",
     r"파일 크기 \g<size>가 한도 \g<limit>를 넘습니다. 더 작은 파일로 나누세요."),
    (r"^the file is not a text JSONL file: it looks like (?P<kind>[^.]+)\. (?P<rest>.*)",
     r"텍스트 JSONL 파일이 아닙니다(\g<kind>로 보입니다). 한 줄에 JSON 객체 하나씩 쓴 UTF-8 텍스트 파일을 "
     r"올리세요."),
    (r"^the file is empty, so it has no records\. (?P<rest>.*)",
     r"파일이 비어 있어 레코드가 없습니다. 한 줄에 JSON 객체 하나씩 쓰세요."),
    (r"^the file contains only blank lines, so it has no records\. (?P<rest>.*)",
     r"파일에 빈 줄만 있어 레코드가 없습니다. 한 줄에 JSON 객체 하나씩 쓰세요."),
    (r"^Cannot use the uploaded file \((?P<count>\d+) errors?\):(?P<rest>.*)",
     r"올린 파일을 쓸 수 없습니다 (오류 \g<count>개):\g<rest>"),
    (r"^Cannot use (?P<name>.+?) \((?P<count>\d+) errors?\):(?P<rest>.*)",
     r"\g<name>을(를) 쓸 수 없습니다 (오류 \g<count>개):\g<rest>"),
    (r"^\.\.\. and (?P<count>\d+) more errors? (?P<rest>.*)", r"... 외 오류 \g<count>개"),
)
_COMPILED = tuple((re.compile(pattern, re.DOTALL), korean) for pattern, korean in _KOREAN_PATTERNS)
_COMPILED_PHRASES = tuple((re.compile(pattern, re.DOTALL), korean) for pattern, korean in _KOREAN_PHRASES)
UNTRANSLATED_LEAD = "입력을 처리할 수 없습니다(아래는 영어 원문): "


def _expand(match: re.Match, korean) -> str:
    return korean(match) if callable(korean) else match.expand(korean)


def _korean(message: str) -> str | None:
    for pattern, korean in _COMPILED_PHRASES:
        match = pattern.fullmatch(message)
        if match:
            return _expand(match, korean)
    for pattern, korean in _COMPILED:
        match = pattern.fullmatch(message)
        if match:
            translated = _expand(match, korean)
            rest = match.groupdict().get("rest")
            # A location prefix carries the problem after it, which is translated on its own.
            if rest is not None and isinstance(korean, str) and "\\g<rest>" in korean:
                inner = _korean(rest)
                if inner is not None:
                    translated = translated[: len(translated) - len(rest)] + inner
            return translated
    return None


def localize(message: str, language: str | None = None) -> str:
    """Return a library message in the request's language, line by line.

    English passes through unchanged. A Korean reader gets the Korean form of
    every known message. An unknown one keeps its English text after a Korean
    lead sentence, so the reader still learns which value to fix.
    """
    language = language or request_language()
    if language != "ko":
        return message
    lines = []
    for line in message.splitlines() or [message]:
        stripped = line.strip()
        if not stripped or re.search("[\uac00-\ud7a3]", stripped):
            lines.append(line)
            continue
        indent = line[: len(line) - len(line.lstrip())]
        translated = _korean(stripped.lstrip("- "))
        bullet = "- " if stripped.startswith("- ") else ""
        lines.append(indent + bullet + (translated if translated is not None else UNTRANSLATED_LEAD + stripped))
    return "\n".join(lines)
