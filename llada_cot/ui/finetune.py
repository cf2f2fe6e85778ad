"""The Fine-tune tab: check a training file, start LoRA fine-tuning, watch it, stop it, download it.

Training runs as a background job (`runtime.jobs`, kind "train") on its own
copy of the base model, so the Playground keeps serving while it runs. One
training job runs at a time. Every open page polls the latest job once a
second, so a reloaded page shows the running job again.
"""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path

import gradio as gr
import pandas as pd
import plotly.graph_objects as go

from llada_cot.adapters import validate_adapter_name
from llada_cot.data import TRAINING_MODES, DataFileError, preview_rows, read_training_file
from llada_cot.finetune import (RunExistsError, default_config, file_sha256, fine_tune, plan_output_dir,
                                zip_adapter)
from llada_cot.jobs import DONE, FAILED, QUEUED, RUNNING, STOPPED, Job, JobBusyError
from llada_cot.loading import load_model
from llada_cot.training import FineTuneConfig, linear_layer_names, lora_parameter_count
from llada_cot.ui import messages
from llada_cot.ui.i18n import I18N
from llada_cot.ui.render import escape_markdown
from llada_cot.ui.runtime import Runtime

logger = logging.getLogger(__name__)

DATASETS_DIR = Path(__file__).resolve().parents[2] / "datasets"
JOB_KIND = "train"
POLL_INTERVAL_S = 1.0
PREVIEW_COLUMNS = ["line", "prompt", "n_rationales", "answer"]


# --- The training file ------------------------------------------------------------------------


def bundled_training_files(datasets_dir: Path = DATASETS_DIR) -> list[str]:
    """Return the names of the bundled training files (``*train*.jsonl`` in datasets/)."""
    if not datasets_dir.is_dir():
        return []
    return sorted(path.name for path in datasets_dir.glob("*train*.jsonl"))


def _source_path(upload: str | None, bundled: str | None, datasets_dir: Path) -> Path | None:
    if upload:
        return Path(upload)
    if bundled:
        if bundled not in bundled_training_files(datasets_dir):
            raise messages.error("bundled_training_unknown", name=bundled)
        return datasets_dir / bundled
    return None


def empty_preview() -> pd.DataFrame:
    """Return a preview table with no rows, headed in the reader's language."""
    return pd.DataFrame(columns=messages.headers(PREVIEW_COLUMNS))


def _error_report(error: DataFileError) -> str:
    noun = messages.text("error_noun" if error.error_count == 1 else "errors_noun")
    lines = [messages.text("file_unusable", count=error.error_count, noun=noun), ""]
    lines += [f"- {escape_markdown(messages.localize(str(item)))}" for item in error.errors]
    hidden = error.error_count - len(error.errors)
    if hidden > 0:
        lines.append(f"- {messages.text('more_errors', count=hidden)}")
    return "\n".join(lines)


def validate_training_source(runtime: Runtime, upload: str | None, bundled: str | None, mode: str,
                             datasets_dir: Path = DATASETS_DIR) -> tuple[str, pd.DataFrame, str | None]:
    """Check the uploaded (or else the bundled) training file.

    Returns a Markdown report (record and item counts, or every error with
    its line number), a preview table, and the path the job will read, which
    is None when the file is unusable. An upload is copied into the
    workspace, so the path outlives Gradio's upload cache.
    """
    path = _source_path(upload, bundled, datasets_dir)
    if path is None:
        return messages.text("no_training_file"), empty_preview(), None
    if mode not in TRAINING_MODES:
        raise messages.error("training_mode_unknown", mode=mode, choices=", ".join(TRAINING_MODES))
    report, preview, usable = describe_training_file(path, mode)
    if not usable:
        return report, preview, None
    if upload:
        # A folder per content keeps the file's own name, which the job's description and a reloaded page show.
        stable = runtime.uploads_dir / f"train-{file_sha256(path)[:16]}" / path.name
        stable.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, stable)
        path = stable
    return report, preview, str(path)


def describe_training_file(path: Path, mode: str) -> tuple[str, pd.DataFrame, bool]:
    """Return the Markdown report, the preview table and whether the file at `path` can be trained on."""
    try:
        training_file = read_training_file(path)
    except DataFileError as error:
        return _error_report(error), empty_preview(), False
    n_records = len(training_file.records)
    report = [messages.text("training_report", records=n_records,
                            record_noun=messages.text("record" if n_records == 1 else "records"),
                            items=training_file.n_items(mode), mode=mode, file=escape_markdown(path.name))]
    report += [f"- {escape_markdown(messages.localize(warning))}" for warning in training_file.warnings]
    # The rows are keyed by the English column names, so the headers are renamed after the frame is built.
    preview = pd.DataFrame(preview_rows(training_file), columns=PREVIEW_COLUMNS)
    preview.columns = messages.headers(PREVIEW_COLUMNS)
    return "\n".join(report), preview, True


# The FineTuneConfig fields of the tab's setting controls after the mode, in the order of those controls.
RESTORED_SETTINGS = ("lora_r", "lora_alpha", "lora_dropout", "target_modules", "learning_rate", "max_steps", "epochs",
                     "batch_size", "gradient_accumulation", "warmup_ratio", "save_steps", "seed", "pad_response_to",
                     "gradient_checkpointing")


def restore_view(runtime: Runtime, datasets_dir: Path = DATASETS_DIR) -> dict | None:
    """Return the file, report, preview, mode, adapter name and settings of the active training job, or None.

    A reloaded page shows them again. `bundled` is the file's name when it is
    a bundled file, so the dropdown can show it, and None for an upload.
    """
    job = runtime.jobs.active(JOB_KIND)
    if job is None or "data_path" not in job.request:
        return None
    path = Path(job.request["data_path"])
    report, preview, _ = describe_training_file(path, job.request["mode"])
    bundled = path.name if path.parent == datasets_dir and path.name in bundled_training_files(datasets_dir) else None
    config = job.request["config"]
    settings = [config[name] for name in RESTORED_SETTINGS]
    # The form writes "no step limit" as 0.
    settings[RESTORED_SETTINGS.index("max_steps")] = config["max_steps"] or 0
    return {"bundled": bundled, "report": report, "preview": preview, "data_path": str(path),
            "mode": job.request["mode"], "adapter": job.request["adapter"], "settings": settings}


# --- Settings ---------------------------------------------------------------------------------


def _required_number(value, label: str, kind: type):
    if value is None or value == "":
        raise messages.error("number_empty", label=label)
    try:
        number = kind(value)
    except (TypeError, ValueError) as error:
        raise messages.error("not_a_number", label=label, value=value) from error
    if kind is int and number != float(value):
        raise messages.error("not_whole", label=label, value=value)
    return number


def config_from_controls(mode, lora_r, lora_alpha, lora_dropout, target_modules, learning_rate, max_steps, epochs,
                         batch_size, gradient_accumulation, warmup_ratio, save_steps, seed, pad_response_to,
                         gradient_checkpointing) -> FineTuneConfig:
    """Build a validated FineTuneConfig from the page's controls; raise gr.Error on bad values.

    A max-steps value of 0 means "train for the given epochs".
    """
    steps = _required_number(max_steps, "Max steps", int)
    try:
        return FineTuneConfig(
            mode=str(mode), lora_r=_required_number(lora_r, "LoRA rank", int),
            lora_alpha=_required_number(lora_alpha, "LoRA alpha", int),
            lora_dropout=_required_number(lora_dropout, "LoRA dropout", float),
            target_modules=tuple(target_modules or ()),
            learning_rate=_required_number(learning_rate, "Learning rate", float),
            max_steps=steps if steps > 0 else None, epochs=_required_number(epochs, "Epochs", float),
            batch_size=_required_number(batch_size, "Batch size", int),
            gradient_accumulation=_required_number(gradient_accumulation, "Gradient accumulation", int),
            warmup_ratio=_required_number(warmup_ratio, "Warmup ratio", float),
            save_steps=_required_number(save_steps, "Checkpoint interval", int),
            seed=_required_number(seed, "Seed", int),
            pad_response_to=_required_number(pad_response_to, "Response padding", int),
            gradient_checkpointing=bool(gradient_checkpointing),
        ).validate()
    except ValueError as error:
        raise messages.library_error(error) from error


def parameter_summary(runtime: Runtime, target_modules, lora_r) -> str:
    """Return a sentence with the trainable-parameter count of the chosen LoRA settings."""
    model = runtime.loaded.model
    total = sum(parameter.numel() for parameter in model.parameters())
    if not target_modules:
        return messages.text("pick_a_layer")
    try:
        rank = int(lora_r)
    except (TypeError, ValueError):
        return messages.text("enter_rank")
    added = lora_parameter_count(model, target_modules, rank)
    return messages.text("lora_parameters", added=added, total=total, share=100 * added / (added + total))


# --- The job ----------------------------------------------------------------------------------


def start_training(runtime: Runtime, data_path: str | None, config: FineTuneConfig, adapter_name: str,
                   resume: bool = False, overwrite: bool = False) -> Job | None:
    """Check the request and start the training job; return None when another job is running.

    Raises gr.Error when the file, the adapter name or the output folder
    cannot be used, so the page shows the reason before any work starts.
    """
    if not data_path:
        raise messages.error("no_valid_training_file")
    try:
        name = validate_adapter_name((adapter_name or "").strip())
    except ValueError as error:
        raise messages.library_error(error) from error
    data = Path(data_path)
    output_dir = runtime.adapters_dir / name
    try:
        training_file = read_training_file(data)
        plan_output_dir(output_dir, config, file_sha256(data), resume, overwrite)
    except DataFileError as error:
        problem = messages.localize(str(error.errors[0] if error.errors else error))
        raise messages.error("training_file_unusable", problem=problem) from error
    except RunExistsError as error:
        raise messages.error("adapter_exists", name=name) from error
    except ValueError as error:
        raise messages.library_error(error) from error

    reference = runtime.loaded.reference
    device = str(runtime.loaded.device)
    dtype = runtime.loaded.model.dtype

    def work(job: Job) -> dict:
        job.report(done=0, total=config.max_steps or 0)
        # A separate copy: LoRA layers go into this model, and the page keeps serving the base one.
        loaded = load_model(reference, device=device, dtype=dtype)
        if job.should_stop:
            return {"adapter": name, "status": STOPPED, "global_step": 0}
        result = fine_tune(loaded, data, config, output_dir, resume=resume, overwrite=overwrite,
                           stop_event=job.stop_event, training_file=training_file,
                           on_log=lambda row: job.report(event=row),
                           on_progress=lambda done, total: job.report(done=done, total=total))
        archive = zip_adapter(output_dir, runtime.downloads_dir / f"{name}.zip")
        return {**result.to_dict(), "adapter": name, "zip": str(archive)}

    description = f"adapter {name} on {data.name}"
    request = {"data_path": str(data), "mode": config.mode, "adapter": name, "config": config.to_dict()}
    try:
        job = runtime.jobs.start(JOB_KIND, description, work, request=request)
    except JobBusyError:
        running = runtime.jobs.active(JOB_KIND)
        messages.warning("job_busy", kind=messages.text("kind_train"),
                         description=running.description if running is not None else "")
        return None
    logger.info("started fine-tuning job %s: %s", job.id, description)
    return job


def stop_training(runtime: Runtime) -> bool:
    """Ask the running training job to stop after its current step; return False when none runs."""
    job = runtime.jobs.active(JOB_KIND)
    if job is None:
        messages.info("no_training_job")
        return False
    runtime.jobs.stop(job.id)
    messages.info("stopping_training")
    return True


def _format_seconds(seconds: float) -> str:
    minutes, seconds = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}" if hours else f"{minutes}:{seconds:02d}"


def job_description(snapshot: dict) -> str:
    """Return the training job's adapter and file in the reader's language."""
    request = snapshot.get("request") or {}
    if "adapter" not in request:
        return escape_markdown(snapshot["description"])
    return escape_markdown(messages.text("training_job", adapter=request["adapter"],
                                         file=Path(request["data_path"]).name))


def status_markdown(snapshot: dict | None) -> str:
    """Describe a job snapshot: progress and time while running, the adapter or the error at the end."""
    if snapshot is None:
        return messages.text("no_training_yet")
    status, done, total = snapshot["status"], snapshot["done"], snapshot["total"]
    end = snapshot["finished_at"] or time.time()
    elapsed = end - snapshot["started_at"]
    lines = [f"**{messages.text('status_' + status)}**: {job_description(snapshot)}"]
    if total:
        line = messages.text("training_progress", done=done, total=total, percent=100 * done / total,
                             elapsed=_format_seconds(elapsed))
        if status == RUNNING and done:
            line += messages.text("time_left", left=_format_seconds(elapsed / done * (total - done)))
        lines.append(line)
    elif status == RUNNING:
        lines.append(messages.text("loading_model", elapsed=_format_seconds(elapsed)))
    result = snapshot["result"]
    if status in (DONE, STOPPED) and result.get("global_step"):
        lines.append(messages.text("adapter_saved", adapter=result["adapter"], step=result["global_step"],
                                   trainable=result["trainable_parameters"], total=result["total_parameters"],
                                   loss=result["final_loss"]))
    if status == STOPPED:
        lines.append(messages.text("resume_hint"))
    if status == FAILED:
        lines.append(messages.text("job_error", error=messages.localize(str(snapshot["error"]))))
    return "\n\n".join(lines)


def loss_figure(events: list[dict]) -> go.Figure:
    """Plot training loss and learning rate against the optimizer step."""
    figure = go.Figure()
    steps = [event["step"] for event in events]
    learning_rate = messages.text("plot_learning_rate")
    figure.add_trace(go.Scatter(x=steps, y=[event["loss"] for event in events], mode="lines+markers",
                                name=messages.text("plot_loss")))
    figure.add_trace(go.Scatter(x=steps, y=[event["learning_rate"] for event in events], mode="lines",
                                name=learning_rate, yaxis="y2", line={"dash": "dot"}))
    figure.update_layout(
        xaxis_title=messages.text("plot_step"), yaxis_title=messages.text("plot_sft_loss"),
        yaxis2={"title": learning_rate, "overlaying": "y", "side": "right", "showgrid": False},
        margin={"l": 50, "r": 50, "t": 30, "b": 40}, height=340, legend={"orientation": "h"},
    )
    return figure


def poll(runtime: Runtime, last_key: tuple | None) -> tuple:
    """Return (status, loss plot, download, key) for the latest training job, skipping unchanged parts."""
    job = runtime.jobs.latest(JOB_KIND)
    snapshot = job.snapshot() if job is not None else None
    key = [snapshot["id"], snapshot["status"], snapshot["done"], len(snapshot["events"])] if snapshot else ["none"]
    if last_key is not None and list(last_key) == key:
        return gr.skip(), gr.skip(), gr.skip(), gr.skip()
    if snapshot is None:
        return status_markdown(None), gr.skip(), gr.skip(), key
    figure = loss_figure(snapshot["events"]) if snapshot["events"] else gr.skip()
    archive = snapshot["result"].get("zip")
    if archive and Path(archive).is_file():
        download = gr.File(value=archive, visible=True)
    else:
        download = gr.File(value=None, visible=False)  # hides the previous job's zip
    return status_markdown(snapshot), figure, download, key


def button_states(key: list | None) -> tuple[dict, dict]:
    """Return updates that enable Start while no training job is active and Stop while one is."""
    active = bool(key) and len(key) > 1 and key[1] in (QUEUED, RUNNING)
    return gr.update(interactive=not active), gr.update(interactive=active)


# --- The tab ----------------------------------------------------------------------------------


def build_finetune_tab(runtime: Runtime) -> dict:
    """Build the tab; return the components whose text depends on the reader's language, with their refreshers."""
    defaults = default_config(runtime.loaded)
    targets = linear_layer_names(runtime.loaded.model)
    bundled = bundled_training_files()
    gr.Markdown(I18N("ft_intro"))
    with gr.Row():
        with gr.Column(scale=1):
            upload = gr.File(label=I18N("ft_upload"), file_types=[".jsonl"], type="filepath")
            bundled_choice = gr.Dropdown(bundled, value=None, label=I18N("ft_bundled"), allow_custom_value=False)
            mode = gr.Radio(list(TRAINING_MODES), value=defaults.mode, label=I18N("ft_mode"),
                            info=I18N("ft_mode_info"))
        with gr.Column(scale=2):
            report = gr.Markdown(label=I18N("ft_validation"))
            # Fixed shares keep the four columns in view without a horizontal scroll.
            preview = gr.Dataframe(label=I18N("ft_preview"), interactive=False, wrap=True,
                                   column_widths=["8%", "50%", "17%", "25%"])
    data_path = gr.State()

    with gr.Accordion(I18N("ft_settings"), open=True):
        with gr.Row():
            lora_r = gr.Number(value=defaults.lora_r, precision=0, minimum=1, label=I18N("ft_lora_r"))
            lora_alpha = gr.Number(value=defaults.lora_alpha, precision=0, minimum=1, label=I18N("ft_lora_alpha"),
                                   info=I18N("ft_lora_alpha_info"))
            lora_dropout = gr.Number(value=defaults.lora_dropout, minimum=0, maximum=0.99,
                                     label=I18N("ft_lora_dropout"))
            learning_rate = gr.Number(value=defaults.learning_rate, minimum=0, label=I18N("ft_learning_rate"))
        target_modules = gr.CheckboxGroup(targets, value=[name for name in defaults.target_modules if name in targets],
                                          label=I18N("ft_targets"), info=I18N("ft_targets_info"))
        parameters = gr.Markdown(parameter_summary(runtime, defaults.target_modules, defaults.lora_r))
        with gr.Row():
            max_steps = gr.Number(value=defaults.max_steps or 0, precision=0, minimum=0, label=I18N("ft_max_steps"),
                                  info=I18N("ft_max_steps_info"))
            # Max steps, when set, decides the run's length, so Epochs is editable only while it is 0.
            epochs = gr.Number(value=defaults.epochs, minimum=0, label=I18N("ft_epochs"),
                               interactive=not defaults.max_steps)
            batch_size = gr.Number(value=defaults.batch_size, precision=0, minimum=1, label=I18N("ft_batch_size"))
            gradient_accumulation = gr.Number(value=defaults.gradient_accumulation, precision=0, minimum=1,
                                              label=I18N("ft_gradient_accumulation"))
        with gr.Row():
            warmup_ratio = gr.Number(value=defaults.warmup_ratio, minimum=0, maximum=0.99,
                                     label=I18N("ft_warmup_ratio"))
            save_steps = gr.Number(value=defaults.save_steps, precision=0, minimum=1, label=I18N("ft_save_steps"))
            seed = gr.Number(value=defaults.seed, precision=0, minimum=0, label=I18N("ft_seed"))
            pad_response_to = gr.Number(value=defaults.pad_response_to, precision=0, minimum=0,
                                        label=I18N("ft_pad_response_to"), info=I18N("ft_pad_info"))
        gradient_checkpointing = gr.Checkbox(value=defaults.gradient_checkpointing,
                                             label=I18N("ft_gradient_checkpointing"))

    with gr.Row():
        adapter_name = gr.Textbox(value=lambda: time.strftime("lora-%Y%m%d-%H%M"), label=I18N("ft_adapter_name"),
                                  info=I18N("ft_adapter_name_info"), max_lines=1)
        resume = gr.Checkbox(value=False, label=I18N("ft_resume"))
        overwrite = gr.Checkbox(value=False, label=I18N("ft_overwrite"))
    with gr.Row():
        start_button = gr.Button(I18N("ft_start"), variant="primary")
        stop_button = gr.Button(I18N("ft_stop"), variant="stop", interactive=False)
    status = gr.Markdown(status_markdown(None))
    plot = gr.Plot(label=I18N("ft_loss_plot"))
    download = gr.File(label=I18N("ft_download"), interactive=False, visible=False)
    last_key = gr.State()
    timer = gr.Timer(POLL_INTERVAL_S)

    def on_validate(upload_path, bundled_name, mode_value):
        return validate_training_source(runtime, upload_path, bundled_name, mode_value)

    validation_inputs = [upload, bundled_choice, mode]
    validation_outputs = [report, preview, data_path]
    gr.on([upload.change, bundled_choice.change, mode.change], on_validate, inputs=validation_inputs,
          outputs=validation_outputs, api_name="finetune_validate")
    max_steps.change(lambda steps: gr.update(interactive=not steps), inputs=[max_steps], outputs=[epochs],
                     api_visibility="private", queue=False)
    gr.on([lora_r.change, target_modules.change], lambda chosen, rank: parameter_summary(runtime, chosen, rank),
          inputs=[target_modules, lora_r], outputs=[parameters], api_visibility="private")

    setting_controls = [mode, lora_r, lora_alpha, lora_dropout, target_modules, learning_rate, max_steps, epochs,
                        batch_size, gradient_accumulation, warmup_ratio, save_steps, seed, pad_response_to,
                        gradient_checkpointing]

    def on_start(path, name, resume_value, overwrite_value, *settings):
        config = config_from_controls(*settings)
        job = start_training(runtime, path, config, name, resume=bool(resume_value), overwrite=bool(overwrite_value))
        if job is not None:
            messages.info("training_started", description=job.description)
        return poll(runtime, None)

    start_button.click(on_start, inputs=[data_path, adapter_name, resume, overwrite, *setting_controls],
                       outputs=[status, plot, download, last_key], api_name="finetune_start")
    def on_stop():
        stop_training(runtime)

    stop_button.click(on_stop, inputs=None, outputs=None, api_name="finetune_stop", queue=False)
    timer.tick(lambda key: poll(runtime, key), inputs=[last_key], outputs=[status, plot, download, last_key],
               api_name="finetune_status", show_progress="hidden")
    restored_controls = setting_controls[1:]  # every setting control after the mode

    def on_load():
        view = restore_view(runtime)
        if view is None:
            skipped = [gr.skip()] * len(restored_controls)
            return gr.skip(), gr.skip(), empty_preview(), gr.skip(), gr.skip(), gr.skip(), *skipped
        if view["bundled"] is not None:
            # The dropdown's change event validates the file again and fills the report, preview and path.
            return view["bundled"], gr.skip(), gr.skip(), gr.skip(), view["mode"], view["adapter"], *view["settings"]
        # An upload cannot be put back into the upload box, so the report stands for it. The mode stays unset
        # because its change event would validate again without a file. The report names the mode.
        return (gr.skip(), view["report"], view["preview"], view["data_path"], gr.skip(), view["adapter"],
                *view["settings"])

    gr.on(triggers=None, fn=on_load, inputs=None,
          outputs=[bundled_choice, report, preview, data_path, mode, adapter_name, *restored_controls], api_name=False)
    # The poll skips `last_key` while nothing changes, so the buttons update only when a job starts or ends.
    last_key.change(button_states, inputs=[last_key], outputs=[start_button, stop_button],
                    api_visibility="private", show_progress="hidden", queue=False)
    return {
        parameters: lambda: parameter_summary(runtime, defaults.target_modules, defaults.lora_r),
        status: lambda: poll(runtime, None)[0],
    }
