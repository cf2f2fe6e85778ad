"""The Evaluate tab: run boxed-answer accuracy over a test file, read each item, replay it, compare runs.

An evaluation runs as a background job (one at a time for the whole server)
that writes `<run name>.jsonl` under the runtime's results folder. The page
polls the job every second, so a reloaded page reattaches to a running job.
"""

from __future__ import annotations

import html
import logging
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import gradio as gr
import pandas as pd

from llada_cot.data import DataFileError, TestFile, describe_test_format, read_test_file
from llada_cot.evaluation import (compare_runs, evaluate_file, read_finished_rows, read_summary, summarize,
                                  write_csv)
from llada_cot.jobs import FAILED, STOPPED, Job, JobBusyError
from llada_cot.sampling import SamplerConfig
from llada_cot.trajectory import replay_tokens
from llada_cot.ui import messages
from llada_cot.ui.i18n import I18N
from llada_cot.ui.playground import adapter_choices, model_dropdown
from llada_cot.ui.render import COLOR_MAP, TokenRenderer, escape_markdown
from llada_cot.ui.runtime import ModelNotAllowedError, Runtime
from llada_cot.ui.sampler_controls import build_sampler_controls, read_sampler

logger = logging.getLogger(__name__)

DATASETS_DIR = Path(__file__).resolve().parents[2] / "datasets"
DEFAULT_DATASET = "test.jsonl"
JOB_KIND = "evaluate"
POLL_INTERVAL_S = 1.0
MAX_BATCH_SIZE = 64
# Run names become file names in the results folder, so they use a safe alphabet.
RUN_NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
TABLE_COLUMNS = ["#", "result", "prompt", "gold answer", "model answer", "NFE"]
COMPARE_COLUMNS = ["line", "prompt", "gold answer", "answer A", "correct A", "answer B", "correct B"]
# Fields a job event keeps of each result row; the trajectory and raw output stay in the file.
EVENT_FIELDS = ("line", "prompt", "gold_answer", "model_answer", "correct", "excluded", "nfe", "elapsed_s",
                "generated_tokens")


# --- Test data ---------------------------------------------------------------


def bundled_test_files(datasets_dir: Path = DATASETS_DIR) -> list[str]:
    """Return the names of the bundled test sets (datasets/*test*.jsonl)."""
    return sorted(path.name for path in datasets_dir.glob("*test*.jsonl") if path.is_file())


@dataclass
class TestData:
    """A validated test file and where it came from."""

    __test__ = False  # keeps pytest from collecting this class as a test

    test_file: TestFile
    name: str  # file name shown to the user
    path: Path


def load_test_data(upload: str | None, dataset: str | None, datasets_dir: Path = DATASETS_DIR) -> TestData:
    """Read the uploaded file, or else the picked bundled set; raise gr.Error with the file's problems."""
    if upload:
        path = Path(upload)
        name = path.name
    elif dataset:
        if dataset not in bundled_test_files(datasets_dir):
            raise messages.error("bundled_test_unknown", name=dataset)
        path = datasets_dir / dataset
        name = dataset
    else:
        raise messages.error("no_test_file")
    try:
        test_file = read_test_file(path)
    except DataFileError as error:
        # Rebuilt with the file's own name, because an upload's path is a temporary folder of the server.
        report = DataFileError(error.errors, error_count=error.error_count, source_name=name)
        raise gr.Error(as_toast_text(messages.localize(str(report))), print_exception=False) from error
    return TestData(test_file=test_file, name=name, path=path)


def as_toast_text(text: str) -> str:
    """Return `text` for Gradio's error toast as plain lines, one problem per line, with no HTML tags.

    Gradio 6.31 renders a toast message as sanitized HTML, so `<`, `>` and `&` are escaped to keep them
    visible. The page's PAGE_CSS shows the line breaks, and API clients get the same lines.
    """
    lines = (line.strip() for line in text.splitlines())
    return "\n".join(html.escape(line, quote=False) for line in lines if line)


def describe_test_data(data: TestData) -> str:
    """Return Markdown naming the file, its detected format and its item count, with any warnings."""
    n_items = len(data.test_file.items)
    lines = [messages.text("test_description", name=escape_markdown(data.name), count=n_items,
                           noun=messages.text("item" if n_items == 1 else "items"),
                           format=describe_test_format(data.test_file.format, messages.text("key_joiner")))]
    lines += [f"- {escape_markdown(messages.localize(warning))}" for warning in data.test_file.warnings]
    return "\n".join(lines)


# --- Starting, polling and stopping a run -------------------------------------


def default_run_name() -> str:
    return time.strftime("eval-%Y%m%d-%H%M%S")


def results_path(runtime: Runtime, run_name: str) -> Path:
    """Return the results file of a run; raise gr.Error when the name is not a safe file name."""
    if not RUN_NAME_PATTERN.fullmatch(run_name or "") or ".." in run_name:
        raise messages.error("run_name_invalid", name=run_name)
    return runtime.results_dir / f"{run_name}.jsonl"


def csv_path(output: Path) -> Path:
    return output.with_suffix(".csv")


def read_whole_number(value, name: str, minimum: int, maximum: int | None = None) -> int:
    """Return `value` as an int within the bounds; raise gr.Error naming the control otherwise."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise messages.error("not_whole", label=name, value=value) from None
    if not number.is_integer() or number < minimum or (maximum is not None and number > maximum):
        upper = messages.text("at_most", maximum=maximum) if maximum is not None else ""
        raise messages.error("whole_at_least", label=name, minimum=minimum, upper=upper, value=value)
    return int(number)


def start_evaluation(runtime: Runtime, data: TestData, adapter: str, config: SamplerConfig, batch_size: int,
                     limit: int, run_name: str, resume: bool, model: str | None = None) -> Job:
    """Start the evaluation job; raise gr.Error when the run cannot start (busy, name taken, bad adapter)."""
    output = results_path(runtime, run_name)
    try:
        runtime.check_model(model)
    except ModelNotAllowedError as error:
        raise messages.error("model_not_allowed", model=error.reference, allowed=", ".join(error.allowed)) from None
    if adapter and adapter not in runtime.adapter_names():
        raise messages.error("adapter_missing", adapter=adapter)
    if output.exists() and not resume:
        raise messages.error("run_exists", name=run_name)
    runtime.uploads_dir.mkdir(parents=True, exist_ok=True)
    runtime.results_dir.mkdir(parents=True, exist_ok=True)
    data_copy = runtime.uploads_dir / f"{run_name}-{data.name}"
    if data.path.resolve() != data_copy.resolve():
        shutil.copyfile(data.path, data_copy)  # keeps the exact file the results came from
    n_items = min(limit, len(data.test_file.items)) if limit else len(data.test_file.items)

    def work(job: Job) -> dict:
        job.result = {"output": str(output)}  # lets a page open the rows while the run goes on
        loaded = runtime.model_for(adapter, model)
        job.report(done=0, total=n_items)

        def on_item(row: dict, done: int, total: int) -> None:
            job.report(done=done, total=total, event={key: row.get(key) for key in EVENT_FIELDS})

        summary = evaluate_file(
            loaded, data.test_file, config, output, batch_size=batch_size, limit=limit or None, resume=resume,
            on_item=on_item, should_stop=lambda: job.should_stop, compute_lock=runtime.compute_lock,
            metadata={"data": data.name, "adapter": adapter or None},
        )
        write_csv(read_finished_rows(output), csv_path(output))
        return {**summary, "output": str(output)}

    model_used = f"adapter {adapter}" if adapter else "base model"
    description = f"{run_name}: {data.name}, {n_items} items, {model_used}"
    request = {"run": run_name, "file": data.name, "path": str(data.path), "items": n_items,
               "adapter": adapter or None, "limit": limit}
    try:
        job = runtime.jobs.start(JOB_KIND, description, work, request=request)
    except JobBusyError as error:
        running = runtime.jobs.active(JOB_KIND)
        raise messages.error("job_busy", kind=messages.text("kind_evaluate"),
                             description=running.description if running is not None else "") from error
    job.report(total=n_items)  # the page shows the item count before the worker reports it
    return job


def progress_html(done: int, total: int, status: str, description: str = "") -> str:
    """Return a progress bar with the item count, the job's status and its description."""
    prefix = f"{html.escape(description)} · " if description else ""
    return (f'<progress value="{done}" max="{max(total, 1)}" style="width:100%"></progress>'
            f"<div>{messages.text('progress_line', prefix=prefix, done=done, total=total, status=html.escape(status))}"
            "</div>")


def summary_markdown(rows: list[dict]) -> str:
    """Return the accuracy with its 95% interval, the counts, mean NFE and generated tokens/s."""
    summary = summarize(rows)
    if summary["accuracy"] is None:
        return messages.text("no_graded", excluded=summary["n_excluded"])
    low, high = summary["ci95"]
    speed = summary["generated_tokens_per_s"]
    return messages.text("accuracy_line", accuracy=summary["accuracy"], low=low, high=high,
                         correct=summary["n_correct"], n=summary["n"], excluded=summary["n_excluded"],
                         nfe=summary["mean_nfe"], speed="n/a" if speed is None else f"{speed:.1f}")


def results_table(rows: list[dict]) -> pd.DataFrame:
    """Return one table row per item: its number, verdict, prompt, gold answer, model answer and NFE."""
    records = []
    for number, row in enumerate(rows, start=1):
        if row.get("excluded"):
            verdict = messages.text("verdict_excluded")
        else:
            verdict = messages.text("verdict_correct" if row.get("correct") else "verdict_incorrect")
        records.append([number, verdict, row.get("prompt"), row.get("gold_answer"), row.get("model_answer"),
                        row.get("nfe")])
    return pd.DataFrame(records, columns=messages.headers(TABLE_COLUMNS))


def restored_form(job: Job | None, datasets_dir: Path = DATASETS_DIR) -> dict:
    """Return the bundled set, adapter and limit of `job`'s request, so a reloaded page's form matches its result.

    `dataset` is None for an upload, which cannot be put back into the upload
    box, and without a job every value is the form's default.
    """
    request = job.request if job is not None else {}
    if "path" not in request:
        return {"dataset": None, "adapter": "", "limit": 0}
    path = Path(request["path"])
    dataset = path.name if path.parent == datasets_dir else None
    return {"dataset": dataset, "adapter": request["adapter"] or "", "limit": request["limit"]}


def button_states(running: bool) -> tuple[dict, dict]:
    """Return updates that enable Run while no evaluation runs and Stop while one does."""
    return gr.update(interactive=not running), gr.update(interactive=running)


def job_description(snapshot: dict) -> str:
    """Return the evaluation's run name, file, item count and adapter in the reader's language."""
    request = snapshot.get("request") or {}
    if "run" not in request:
        return snapshot["description"]
    adapter = request["adapter"]
    model_used = messages.text("adapter_named", adapter=adapter) if adapter else messages.text("base_model")
    return messages.text("evaluation_job", run=request["run"], file=request["file"], items=request["items"],
                         model=model_used)


def job_status_text(snapshot: dict) -> str:
    status = snapshot["status"]
    if status == FAILED:
        return messages.text("eval_failed_status", error=messages.localize(str(snapshot["error"])))
    if status == STOPPED:
        return messages.text("eval_stopped_status")
    return messages.text(f"status_{status}").lower()


@dataclass
class PollUpdate:
    """Page changes from one poll of the evaluation job."""

    progress: str
    summary: str
    table: pd.DataFrame | None  # None when the item count has not changed since the last poll
    active: bool  # whether to keep polling
    output: Path | None  # the results file, as soon as the job has named it
    n_rendered: int


def poll_job(runtime: Runtime, job_id: str | None, n_rendered: int) -> PollUpdate | None:
    """Read the job's snapshot; return None when the job is unknown."""
    job = runtime.jobs.get(job_id)
    if job is None:
        return None
    snapshot = job.snapshot()
    rows = snapshot["events"]
    finished = job.finished
    table = results_table(rows) if len(rows) != n_rendered or finished else None
    output = Path(snapshot["result"]["output"]) if snapshot["result"].get("output") else None
    summary = summary_markdown(rows) if rows else ""
    if snapshot["status"] == FAILED:
        summary = f"{messages.text('eval_failed', error=messages.localize(str(snapshot['error'])))}\n\n{summary}"
    progress = progress_html(snapshot["done"], snapshot["total"], job_status_text(snapshot),
                             job_description(snapshot))
    return PollUpdate(progress=progress, summary=summary, table=table, active=not finished, output=output,
                      n_rendered=len(rows))


def stop_evaluation(runtime: Runtime, job_id: str | None) -> bool:
    """Ask the job to stop after its current denoising step; return False when it is not running."""
    return job_id is not None and runtime.jobs.stop(job_id)


# --- Finished runs: open, replay, download, compare ------------------------------


def finished_run_names(runtime: Runtime) -> list[str]:
    """Return the names of the result files in the results folder, newest first."""
    if not runtime.results_dir.is_dir():
        return []
    paths = sorted(runtime.results_dir.glob("*.jsonl"), key=lambda path: path.stat().st_mtime, reverse=True)
    return [path.stem for path in paths]


def read_run(runtime: Runtime, run_name: str | None) -> tuple[Path, list[dict]]:
    """Return a run's results file and rows; raise gr.Error when it is missing or empty."""
    if not run_name:
        raise messages.error("no_run_picked")
    output = results_path(runtime, run_name)
    rows = read_finished_rows(output)
    if not rows:
        raise messages.error("run_has_no_results", name=run_name)
    return output, rows


def download_files(output: Path) -> tuple[Path, Path]:
    """Return the results JSONL and a CSV of it, writing the CSV when it is missing or older."""
    table = csv_path(output)
    if not table.is_file() or table.stat().st_mtime < output.stat().st_mtime:
        write_csv(read_finished_rows(output), table)
    return output, table


def item_details(row: dict) -> str:
    verdict = messages.text("verdict_excluded_long") if row.get("excluded") else messages.text(
        "verdict_correct" if row.get("correct") else "verdict_incorrect")
    return messages.text("item_details", line=row.get("line"), verdict=verdict, gold=row.get("gold_answer"),
                         model=row.get("model_answer"), nfe=row.get("nfe"), prompt=row.get("prompt"),
                         output=row.get("text", ""))


def replay_state(row: dict) -> dict:
    """Return what the replay slider needs: the row's steps and its generated region before the first step."""
    steps = row.get("trajectory") or []
    fixed = {int(offset): token for offset, token in (row.get("fixed") or {}).items()}
    gen_length = row.get("gen_length")
    if not gen_length:
        # Rows without the field: every position is committed once or fixed, so the highest one bounds the length.
        positions = [position for event in steps for position in event["positions"]] + list(fixed)
        gen_length = max(positions) + 1 if positions else 0
    return {"steps": steps, "gen_length": gen_length, "fixed": fixed}


def replay_frame(renderer: TokenRenderer, state: dict, step: int) -> list[tuple[str, str]]:
    """Return the highlighted tokens after `step` (-1 is the start)."""
    initial = [renderer.ids.mask] * state["gen_length"]
    for offset, token in state["fixed"].items():
        initial[offset] = token
    tokens = replay_tokens(state["steps"], state["gen_length"], step, renderer.ids.mask, initial=initial)
    new = next((set(event["positions"]) for event in state["steps"] if event["step"] == step), set())
    return renderer.frame(tokens, new)


def select_item(output: Path | None, number: int) -> tuple[dict, str]:
    """Return the replay state and details of item `number` (1-based) of a results file."""
    if output is None:
        raise messages.error("no_results_shown")
    rows = read_finished_rows(output)
    if not 1 <= number <= len(rows):
        raise messages.error("item_missing", number=number, name=output.name, count=len(rows))
    row = rows[number - 1]
    return replay_state(row), item_details(row)


def describe_run(name: str, output: Path, rows: list[dict]) -> str:
    """Return one Markdown line with a run's name, settings and accuracy."""
    settings = read_summary(output)
    sampler = settings.get("sampler") or {}
    parts = [f"**{name}**"]
    if settings:
        parts.append(f"model {settings.get('model')}, data {settings.get('data', 'unknown')}, "
                     f"gen_length {sampler.get('gen_length')}, steps {sampler.get('steps')}, "
                     f"block_length {sampler.get('block_length')}")
    parts.append(summary_markdown(rows))
    return " · ".join(parts)


def compare_two_runs(runtime: Runtime, name_a: str | None, name_b: str | None) -> tuple[str, pd.DataFrame]:
    """Return both runs' accuracies and a table of the items where correctness or the answer differ."""
    if name_a and name_a == name_b:
        raise messages.error("same_runs", name=name_a)
    output_a, rows_a = read_run(runtime, name_a)
    output_b, rows_b = read_run(runtime, name_b)
    comparison = compare_runs(rows_a, rows_b)
    lines = [f"A: {describe_run(name_a, output_a, rows_a)}", f"B: {describe_run(name_b, output_b, rows_b)}",
             messages.text("runs_compared", common=comparison.n_common, differing=len(comparison.differing),
                           only_a=comparison.n_only_a, only_b=comparison.n_only_b)]
    records = [[item["line"], item["prompt"], item["gold_answer"], item["model_answer_a"], item["correct_a"],
                item["model_answer_b"], item["correct_b"]] for item in comparison.differing]
    return "\n\n".join(lines), pd.DataFrame(records, columns=messages.headers(COMPARE_COLUMNS))


# --- The tab ---------------------------------------------------------------------


def _run_choices(runtime: Runtime) -> tuple:
    """Return fresh choices for the three pickers of finished runs."""
    names = finished_run_names(runtime)
    return (gr.Dropdown(choices=names), gr.Dropdown(choices=names), gr.Dropdown(choices=names))


def build_evaluate_tab(runtime: Runtime) -> None:
    defaults = runtime.default_sampler()
    bundled = bundled_test_files()
    default_dataset = None
    if DEFAULT_DATASET in bundled:
        default_dataset = DEFAULT_DATASET
    elif bundled:
        default_dataset = bundled[0]
    renderer = TokenRenderer(runtime.loaded.tokenizer, runtime.loaded.ids)

    with gr.Row():
        with gr.Column(scale=2):
            with gr.Row():
                dataset = gr.Dropdown(bundled, value=default_dataset, label=I18N("eval_dataset"),
                                      info=I18N("eval_dataset_info"))
                upload = gr.File(label=I18N("eval_upload"), file_types=[".jsonl"], type="filepath",
                                 elem_id="evaluate-upload")
            data_info = gr.Markdown()
            with gr.Row():
                # Typed names are allowed so that API callers can use an adapter trained after the page loaded.
                adapter = gr.Dropdown(adapter_choices(runtime), value="", allow_custom_value=True,
                                      label=I18N("adapter"), info=I18N("adapter_info"))
                refresh_adapters = gr.Button(I18N("refresh"), size="sm", scale=0)
            model = model_dropdown(runtime)
            with gr.Row():
                batch_size = gr.Slider(1, MAX_BATCH_SIZE, value=8, step=1, label=I18N("eval_batch_size"),
                                       info=I18N("eval_batch_size_info"))
                limit = gr.Number(value=0, precision=0, minimum=0, label=I18N("eval_limit"),
                                  info=I18N("eval_limit_info"))
            with gr.Row():
                run_name = gr.Textbox(value="", label=I18N("eval_run_name"), info=I18N("eval_run_name_info"))
                resume = gr.Checkbox(value=False, label=I18N("eval_resume"), info=I18N("eval_resume_info"))
            with gr.Row():
                run_button = gr.Button(I18N("eval_run"), variant="primary")
                stop_button = gr.Button(I18N("stop"), variant="stop", interactive=False)
        with gr.Column(scale=1):
            sampler = build_sampler_controls(defaults)

    progress = gr.HTML()
    summary = gr.Markdown()
    table = gr.Dataframe(headers=TABLE_COLUMNS, label=I18N("eval_table"), interactive=False, wrap=True,
                         max_height=400, column_widths=["6%", "12%", "50%", "11%", "13%", "8%"],
                         elem_id="evaluate-table")
    with gr.Row():
        download_jsonl = gr.DownloadButton(I18N("eval_download_jsonl"), value=None, interactive=False)
        download_csv = gr.DownloadButton(I18N("eval_download_csv"), value=None, interactive=False)
    details = gr.Markdown()
    live = gr.HighlightedText(label=I18N("denoising"), color_map=COLOR_MAP, show_legend=True,
                              show_inline_category=False, combine_adjacent=False)
    replay = gr.Slider(-1, 0, value=0, step=1, label=I18N("replay"), info=I18N("replay_info"), interactive=False)

    with gr.Accordion(I18N("eval_runs"), open=False):
        # Runs that finish after the page loaded are not among the choices until a refresh, so custom
        # values are allowed. read_run rejects a name that has no results.
        run_names = finished_run_names(runtime)
        with gr.Row():
            opened = gr.Dropdown(run_names, value=None, label=I18N("eval_open_run"), info=I18N("eval_open_run_info"),
                                 allow_custom_value=True)
            open_button = gr.Button(I18N("eval_open"), scale=0)
            refresh_runs = gr.Button(I18N("refresh"), size="sm", scale=0)
        with gr.Row():
            run_a = gr.Dropdown(run_names, value=None, label=I18N("eval_run_a"), allow_custom_value=True)
            run_b = gr.Dropdown(run_names, value=None, label=I18N("eval_run_b"), allow_custom_value=True)
            compare_button = gr.Button(I18N("eval_compare"), scale=0, elem_id="evaluate-compare")
        compare_summary = gr.Markdown()
        compare_table = gr.Dataframe(headers=COMPARE_COLUMNS, label=I18N("eval_compare_table"),
                                     interactive=False, wrap=True, max_height=400)

    job_id = gr.State(None)
    n_rendered = gr.State(-1)
    shown_output = gr.State(None)  # the results file whose rows the table shows
    replay_data = gr.State(None)
    timer = gr.Timer(POLL_INTERVAL_S, active=False)

    def on_data_change(upload_path, dataset_name):
        if not upload_path and not dataset_name:
            return ""
        return describe_test_data(load_test_data(upload_path, dataset_name))

    def on_run(upload_path, dataset_name, adapter_name, batch, limit_value, name, resume_value, *sampler_values):
        *sampler_values, model_name = sampler_values
        data = load_test_data(upload_path, dataset_name)
        config = read_sampler(*sampler_values)
        batch = read_whole_number(batch, "Batch size", 1, MAX_BATCH_SIZE)
        limit_value = read_whole_number(0 if limit_value in (None, "") else limit_value, "Limit", 0)
        name = (name or "").strip() or default_run_name()
        job = start_evaluation(runtime, data, adapter_name or "", config, batch, limit_value, name,
                               bool(resume_value), model_name or None)
        for note in config.notes:
            gr.Info(messages.localize(note))
        snapshot = job.snapshot()
        return (job.id, -1, gr.Timer(active=True), describe_test_data(data),
                progress_html(snapshot["done"], snapshot["total"], job_status_text(snapshot),
                              job_description(snapshot)), "")

    def on_poll(current_job, rendered):
        update = poll_job(runtime, current_job, rendered)
        if update is None:
            return (gr.skip(),) * 6 + (gr.Timer(active=False),) + (gr.skip(),) * 4 + button_states(False)
        if update.active:
            downloads = (gr.skip(), gr.skip())
            run_pickers = (gr.skip(),) * 3
        else:
            # The run has ended: offer its files and list it among the finished runs.
            has_output = update.output is not None and update.output.is_file()
            jsonl_file, csv_file = download_files(update.output) if has_output else (None, None)
            downloads = (gr.DownloadButton(value=jsonl_file, interactive=has_output),
                         gr.DownloadButton(value=csv_file, interactive=has_output))
            run_pickers = _run_choices(runtime)
        return (
            update.progress, update.summary, gr.skip() if update.table is None else update.table,
            *downloads, update.n_rendered, gr.Timer(active=update.active),
            str(update.output) if update.output is not None else gr.skip(), *run_pickers,
            *button_states(update.active),
        )

    def on_stop(current_job):
        if not stop_evaluation(runtime, current_job):
            messages.warning("no_eval_running")

    def evaluate_status() -> dict:
        """Return the latest evaluation's status, progress and accuracy so far, for API clients."""
        job = runtime.jobs.latest(JOB_KIND)
        if job is None:
            return {"status": None}
        snapshot = job.snapshot()
        rows = snapshot["events"]
        return {"status": snapshot["status"], "description": snapshot["description"], "done": snapshot["done"],
                "total": snapshot["total"], "error": snapshot["error"], "summary": summarize(rows) if rows else None}

    # The page follows a run through its load event and timer, which carry page state, so API clients poll this.
    gr.api(evaluate_status, api_name="evaluate_status")

    def on_load():
        # A reloaded page shows the latest evaluation, running or finished, through the first timer tick.
        job = runtime.jobs.latest(JOB_KIND)
        names = finished_run_names(runtime)
        choices = (gr.Dropdown(choices=names),) * 3
        form = restored_form(job)
        # The dropdown starts at the default set unless the shown run used another bundled set.
        shown_dataset = form["dataset"] or default_dataset
        info = describe_test_data(load_test_data(None, shown_dataset)) if shown_dataset else ""
        # Choices and headers built with the page are English, because no request is known then.
        localized = (gr.Dropdown(choices=adapter_choices(runtime), value=form["adapter"]),
                     pd.DataFrame(columns=messages.headers(TABLE_COLUMNS)),
                     pd.DataFrame(columns=messages.headers(COMPARE_COLUMNS)))
        restored = (shown_dataset if form["dataset"] else gr.skip(), form["limit"])
        if job is None:
            return (None, gr.Timer(active=False), *choices, info, *localized, *restored)
        return (job.id, gr.Timer(active=True), *choices, info, *localized, *restored)

    def on_open(name):
        output, rows = read_run(runtime, name)
        jsonl_file, csv_file = download_files(output)
        return (None, gr.Timer(active=False), progress_html(len(rows), len(rows), "opened", name),
                describe_run(name, output, rows), results_table(rows), len(rows),
                gr.DownloadButton(value=jsonl_file, interactive=True),
                gr.DownloadButton(value=csv_file, interactive=True), str(output))

    def on_select(output, event: gr.SelectData):
        number = int(event.row_value[0]) if event.row_value else int(event.index[0]) + 1
        state, text = select_item(Path(output) if output else None, number)
        last_step = state["steps"][-1]["step"] if state["steps"] else -1
        return (replay_frame(renderer, state, last_step), text,
                gr.Slider(minimum=-1, maximum=max(last_step, 0), value=last_step, step=1, interactive=True), state)

    def on_replay(step, state):
        if not state:
            return gr.skip()
        return replay_frame(renderer, state, int(step))

    # The old description is cleared first, so a rejected file never appears described by its predecessor.
    dataset.change(lambda: "", inputs=None, outputs=[data_info], api_name=False, queue=False).then(
        on_data_change, inputs=[upload, dataset], outputs=[data_info], api_name="evaluate_data")
    upload.change(lambda: "", inputs=None, outputs=[data_info], api_name=False, queue=False).then(
        on_data_change, inputs=[upload, dataset], outputs=[data_info], api_name=False)
    refresh_adapters.click(lambda: gr.Dropdown(choices=adapter_choices(runtime)), inputs=None,
                           outputs=[adapter], api_name=False, queue=False)
    run_button.click(
        on_run, inputs=[upload, dataset, adapter, batch_size, limit, run_name, resume, *sampler, model],
        outputs=[job_id, n_rendered, timer, data_info, progress, summary], api_name="evaluate",
    ).success(lambda: button_states(True), inputs=None, outputs=[run_button, stop_button], api_name=False,
              queue=False)
    timer.tick(
        on_poll, inputs=[job_id, n_rendered],
        outputs=[progress, summary, table, download_jsonl, download_csv, n_rendered, timer, shown_output,
                 opened, run_a, run_b, run_button, stop_button],
        api_name=False, concurrency_limit=None, show_progress="hidden",
    )
    stop_button.click(on_stop, inputs=[job_id], outputs=None, api_name="evaluate_stop", queue=False)
    gr.on(triggers=None, fn=on_load, inputs=None,
          outputs=[job_id, timer, opened, run_a, run_b, data_info, adapter, table, compare_table, dataset, limit],
          api_name=False)
    refresh_runs.click(lambda: _run_choices(runtime), inputs=None, outputs=[opened, run_a, run_b],
                       api_name=False, queue=False)
    open_button.click(on_open, inputs=[opened],
                      outputs=[job_id, timer, progress, summary, table, n_rendered, download_jsonl, download_csv,
                               shown_output], api_name=False)
    table.select(on_select, inputs=[shown_output], outputs=[live, details, replay, replay_data], api_name=False)
    replay.release(on_replay, inputs=[replay, replay_data], outputs=[live], api_name=False)
    compare_button.click(lambda a, b: compare_two_runs(runtime, a, b), inputs=[run_a, run_b],
                         outputs=[compare_summary, compare_table], api_name="evaluate_compare")
