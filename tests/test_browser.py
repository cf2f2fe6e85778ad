"""The page in headless Chromium: generate, switch language, upload a bad file.

Needs Debian's chromium (/usr/bin/chromium) and the playwright package; .ci/run
installs both. With LLADA_COT_SCREENSHOTS=1 the test also saves a screenshot of
each tab in English and Korean under docs/screenshots/.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
if not Path(CHROMIUM).is_file():
    pytest.skip("Chromium is not installed (apt-get install chromium)", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install playwright)")

from llada_cot.data import TRAINING_EXAMPLE  # noqa: E402
from llada_cot.ui.app import PAGE_CSS, build_app  # noqa: E402
from llada_cot.ui.i18n import ENGLISH, I18N, KOREAN  # noqa: E402
from llada_cot.ui.messages import MESSAGES  # noqa: E402
from llada_cot.ui.runtime import Runtime  # noqa: E402
from page_api import free_port  # noqa: E402

SCREENSHOT_DIR = Path(__file__).resolve().parents[1] / "docs" / "screenshots"
# Flags that keep headless Chromium off the network and quiet as root.
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
TABS = ("playground", "compare", "finetune", "evaluate")


@pytest.fixture(scope="module")
def page_url(bundled, tmp_path_factory):
    runtime = Runtime(loaded=bundled, workspace=tmp_path_factory.mktemp("workspace"))
    demo = build_app(runtime)
    demo.queue(default_concurrency_limit=1)
    port = free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True, i18n=I18N,
                css=PAGE_CSS)
    yield f"http://127.0.0.1:{port}/"
    demo.close()


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield instance
        instance.close()


def open_page(browser, url: str, locale: str):
    page = browser.new_page(locale=locale, viewport={"width": 1280, "height": 1000})
    page.goto(url)
    page.get_by_role("button", name=(ENGLISH if locale.startswith("en") else KOREAN)["generate"]).wait_for()
    return page


def save_tab_screenshots(page, texts: dict, language: str) -> None:
    if os.environ.get("LLADA_COT_SCREENSHOTS") != "1":
        return
    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
    for tab in TABS:
        if tab not in texts:
            continue
        button = page.get_by_role("tab", name=texts[tab])
        if button.count() == 0:
            continue
        button.first.click()
        page.wait_for_timeout(800)
        page.screenshot(path=str(SCREENSHOT_DIR / f"{tab}-{language}.png"), full_page=True)


def test_generation_shows_boxed_answer(browser, page_url):
    page = open_page(browser, page_url, "en-US")
    page.get_by_role("button", name=ENGLISH["generate"]).click()
    answer = page.get_by_label(ENGLISH["final_text"])
    answer.wait_for()
    page.wait_for_function(
        "label => [...document.querySelectorAll('textarea')].some(t => t.value.includes('\\\\boxed{'))",
        arg=ENGLISH["final_text"], timeout=60000)
    save_tab_screenshots(page, ENGLISH, "en")
    page.close()


def test_rejected_request_clears_the_last_result(browser, page_url):
    page = open_page(browser, page_url, "en-US")
    page.get_by_role("button", name=ENGLISH["generate"]).click()
    has_boxed = "() => [...document.querySelectorAll('textarea')].some(t => t.value.includes('\\\\boxed{'))"
    page.wait_for_function(has_boxed, timeout=60000)
    page.get_by_label(ENGLISH["prompt"]).fill("   ")
    page.get_by_role("button", name=ENGLISH["generate"]).click()
    page.get_by_text(MESSAGES["prompt_empty"][0]).first.wait_for(timeout=30000)
    page.wait_for_function(f"() => !({has_boxed})()", timeout=30000)
    page.close()


def test_seed_box_starts_empty(browser, page_url):
    page = open_page(browser, page_url, "en-US")
    seed = page.get_by_placeholder(ENGLISH["seed_placeholder"], exact=True).first
    assert seed.input_value() == ""
    page.close()


def test_korean_locale_translates_labels(browser, page_url):
    page = open_page(browser, page_url, "ko-KR")
    assert page.get_by_role("button", name=KOREAN["generate"]).is_visible()
    assert page.get_by_text(KOREAN["steps"], exact=True).first.is_visible()
    # Text the server writes when the page loads follows the browser's language as well.
    page.wait_for_function("() => [...document.querySelectorAll('input')].some(i => i.value === '기본 모델')",
                           timeout=30000)
    save_tab_screenshots(page, KOREAN, "ko")
    page.close()


def upload_training_file(browser, url: str, path: Path, text: str):
    """Open the page in English, write `text` to `path` and upload it in the Fine-tune tab."""
    path.write_text(text)
    page = open_page(browser, url, "en-US")
    page.get_by_role("tab", name=ENGLISH["finetune"]).click()
    page.locator("input[type=file]").first.set_input_files(str(path))
    return page


def test_malformed_training_file_shows_error(browser, page_url, tmp_path):
    page = upload_training_file(browser, page_url, tmp_path / "bad.jsonl",
                                '{"prompt": "Solve 3 + 4", "rationales": "3 + 4 = 7", "answer": "\\\\boxed{7}"}\nnot json\n')
    page.get_by_text("line 2").first.wait_for(timeout=30000)
    assert page.get_by_text("rationales").first.is_visible()
    page.close()


def test_empty_file_example_keeps_backslashes(browser, page_url, tmp_path):
    page = upload_training_file(browser, page_url, tmp_path / "empty.jsonl", "")
    message = page.get_by_text("the file is empty").first
    message.wait_for(timeout=30000)
    # The example is JSON, so the rendered text must keep both backslashes of "\\boxed{7}".
    assert TRAINING_EXAMPLE in message.inner_text()
    page.close()


def test_start_and_stop_follow_the_job(browser, page_url, tmp_path):
    record = '{"prompt": "What is 3 + 4?", "rationales": ["3 + 4 = 7"], "answer": "\\\\boxed{7}"}\n'
    page = upload_training_file(browser, page_url, tmp_path / "ten.jsonl", record * 10)
    page.get_by_text("10 records").first.wait_for(timeout=30000)
    start = page.get_by_role("button", name=ENGLISH["ft_start"])
    stop = page.get_by_role("button", name=ENGLISH["ft_stop"])
    sync_api.expect(start).to_be_enabled()
    sync_api.expect(stop).to_be_disabled()

    adapter = page.get_by_label(ENGLISH["ft_adapter_name"]).input_value()
    max_steps = page.get_by_label(ENGLISH["ft_max_steps"], exact=True)
    max_steps.fill("900")
    max_steps.press("Enter")
    start.click()
    # A 900-step run is still going when Stop is pressed.
    sync_api.expect(stop).to_be_enabled(timeout=30000)
    sync_api.expect(start).to_be_disabled()

    # A reload during the run shows the run's file, report, adapter name and settings again.
    page.reload()
    page.get_by_role("tab", name=ENGLISH["finetune"]).click()
    page.get_by_text("10 records").first.wait_for(timeout=30000)
    sync_api.expect(page.get_by_label(ENGLISH["ft_adapter_name"])).to_have_value(adapter)
    sync_api.expect(max_steps).to_have_value("900")
    assert page.get_by_text("What is 3 + 4?").count() > 0  # the preview
    sync_api.expect(stop).to_be_enabled(timeout=30000)
    stop.click()
    sync_api.expect(start).to_be_enabled(timeout=60000)
    sync_api.expect(stop).to_be_disabled()
    page.get_by_text("Stopped").first.wait_for(timeout=30000)
    page.close()


def test_epochs_editable_only_without_max_steps(browser, page_url):
    page = open_page(browser, page_url, "en-US")
    page.get_by_role("tab", name=ENGLISH["finetune"]).click()
    epochs = page.get_by_label(ENGLISH["ft_epochs"], exact=True)
    max_steps = page.get_by_label(ENGLISH["ft_max_steps"], exact=True)
    sync_api.expect(epochs).to_be_disabled()
    max_steps.fill("0")
    max_steps.press("Enter")
    sync_api.expect(epochs).to_be_enabled(timeout=10000)
    max_steps.fill("50")
    max_steps.press("Enter")
    sync_api.expect(epochs).to_be_disabled(timeout=10000)
    page.close()


def test_evaluate_run_and_stop_follow_the_job(browser, page_url):
    page = open_page(browser, page_url, "en-US")
    page.get_by_role("tab", name=ENGLISH["evaluate"]).click()
    run = page.get_by_role("button", name=ENGLISH["eval_run"])
    stop = page.get_by_role("button", name=ENGLISH["stop"], exact=True)
    sync_api.expect(run).to_be_enabled(timeout=30000)
    sync_api.expect(stop).to_be_disabled()

    run.click()
    # The default file has 499 items, so the run is still going when Stop is pressed.
    sync_api.expect(stop).to_be_enabled(timeout=30000)
    sync_api.expect(run).to_be_disabled()
    stop.click()
    sync_api.expect(run).to_be_enabled(timeout=60000)
    sync_api.expect(stop).to_be_disabled()
    page.close()


def test_evaluate_form_matches_run_after_reload(browser, page_url):
    page = open_page(browser, page_url, "en-US")
    page.get_by_role("tab", name=ENGLISH["evaluate"]).click()
    dataset = page.get_by_label(ENGLISH["eval_dataset"])
    dataset.click()
    page.get_by_role("option", name="demo_test.jsonl").click()
    page.get_by_text("demo_test.jsonl: 100 items").first.wait_for(timeout=30000)
    limit = page.get_by_label(ENGLISH["eval_limit"])
    limit.fill("3")
    limit.press("Enter")
    page.get_by_role("button", name=ENGLISH["eval_run"]).click()
    page.get_by_text("3 / 3 items").first.wait_for(timeout=60000)

    page.reload()
    page.get_by_role("tab", name=ENGLISH["evaluate"]).click()
    page.get_by_text("3 / 3 items").first.wait_for(timeout=30000)
    sync_api.expect(page.get_by_label(ENGLISH["eval_dataset"])).to_have_value("demo_test.jsonl")
    sync_api.expect(page.get_by_label(ENGLISH["eval_limit"])).to_have_value("3")
    page.close()


def test_evaluate_error_toast_lines(browser, page_url, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "What is 2 + 2?"}\nnot json\n')
    page = open_page(browser, page_url, "en-US")
    page.get_by_role("tab", name=ENGLISH["evaluate"]).click()
    page.locator("#evaluate-upload input[type=file]").set_input_files(str(bad))
    toast = page.get_by_test_id("toast-text").filter(has_text="bad.jsonl").first
    toast.wait_for(timeout=30000)
    lines = toast.inner_text().splitlines()
    assert lines[0].startswith("Cannot use bad.jsonl (2 errors)")
    assert lines[1].startswith("line 1: ")
    assert lines[2].startswith("line 2: invalid JSON")
    assert "<br>" not in toast.inner_text()
    page.close()


def test_korean_reader_gets_korean_file_errors(browser, page_url, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "Solve 3 + 4", "rationales": "3 + 4 = 7", "answer": "\\\\boxed{7}"}\nnot json\n')
    page = open_page(browser, page_url, "ko-KR")
    page.get_by_role("tab", name=KOREAN["finetune"]).click()
    page.locator("input[type=file]").first.set_input_files(str(bad))
    page.get_by_text("2번째 줄").first.wait_for(timeout=30000)
    assert page.get_by_text("이 파일은 쓸 수 없습니다").first.is_visible()
    assert page.get_by_text("'rationales' 필드").first.is_visible()
    page.close()
