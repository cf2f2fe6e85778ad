"""Run LoRA fine-tuning jobs that survive a stop, a crash and a restart.

One output folder contains one run:

    adapter_config.json, adapter_model.safetensors   the latest adapter, in PEFT's format
    train_log.jsonl                                   step, loss and learning_rate per logging step
    finetune.json                                     settings, training-file hash, status, parameter counts
    checkpoints/checkpoint-N/                         Trainer checkpoints that resume continues from

The adapter files are replaced as a whole folder (see `save_adapter_atomically`),
so a crash while saving leaves the previous adapter in place. Stopping saves a
checkpoint and the adapter at the current step, and resuming restores the
adapter, optimizer, scheduler and step count from the last checkpoint.

Training goes through `transformers.Trainer`, so ``accelerate launch
--multi_gpu`` or ``torchrun --nproc_per_node N`` runs the same code on several
processes, and only the main process writes files. On CPUs, accelerate 1.16's
``launch --cpu`` starts a single process unless it is given an MPI host file,
so use torchrun there (tests/test_training.py runs two CPU processes with torchrun).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import threading
import time
import uuid
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from accelerate import PartialState
from transformers import PrinterCallback, TrainerCallback, TrainingArguments, set_seed
from transformers.trainer_utils import get_last_checkpoint

from llada_cot.adapters import ADAPTER_CONFIG_FILE
from llada_cot.data import TrainingFile, read_training_file
from llada_cot.loading import LoadedModel
from llada_cot.training import FineTuneConfig, LLaDASFTTrainer, LoraSummary, SFTCollator, apply_lora, build_dataset

logger = logging.getLogger(__name__)

RUN_FILE = "finetune.json"
LOG_FILE = "train_log.jsonl"
CHECKPOINTS_DIR = "checkpoints"
# Files that PeftModel.save_pretrained writes; the rest of a run folder is kept across saves.
ADAPTER_FILES = (ADAPTER_CONFIG_FILE, "adapter_model.safetensors", "README.md")
# Settings that may change when a run is resumed; any other change would mix two runs in one adapter.
RESUMABLE_CHANGES = ("max_steps", "epochs", "save_steps", "save_total_limit", "logging_steps")
# Below this many parameters a model gets the small-model recipe of `default_config`.
SMALL_MODEL_PARAMETERS = 100_000_000
DONE, STOPPED, RUNNING = "done", "stopped", "running"


def default_config(loaded: LoadedModel) -> FineTuneConfig:
    """Return fine-tuning settings that suit the loaded model.

    Small models (the bundled tiny one) get the recipe measured in
    docs/benchmarks.md; larger ones get FineTuneConfig's defaults for
    LLaDA-8B. Responses are padded to the model's default generation length
    when it ships sampler defaults, so training covers the window it samples.
    """
    n_parameters = sum(parameter.numel() for parameter in loaded.model.parameters())
    pad_response_to = int(loaded.sampler_defaults.get("gen_length", 0))
    if n_parameters < SMALL_MODEL_PARAMETERS:
        return FineTuneConfig(lora_r=16, lora_alpha=32, lora_dropout=0.0, learning_rate=2e-3, max_steps=1000,
                              batch_size=32, warmup_ratio=0.05, save_steps=100, logging_steps=5,
                              pad_response_to=pad_response_to).validate()
    on_gpu = loaded.device.type == "cuda"
    return FineTuneConfig(pad_response_to=pad_response_to, gradient_checkpointing=on_gpu).validate()


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


# --- The output folder ------------------------------------------------------------------------


def read_run_info(output_dir: Path) -> dict | None:
    """Return the contents of the run's finetune.json, or None when there is none."""
    path = Path(output_dir) / RUN_FILE
    if not path.is_file():
        return None
    return json.loads(path.read_text(encoding="utf-8"))


def saved_config(output_dir: Path) -> FineTuneConfig | None:
    """Return the settings a run in `output_dir` was started with, or None."""
    info = read_run_info(output_dir)
    return None if info is None else FineTuneConfig.from_dict(info["config"])


def read_train_log(output_dir: Path) -> list[dict]:
    """Return the rows of the run's train_log.jsonl; a torn last line is skipped."""
    path = Path(output_dir) / LOG_FILE
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            logger.warning("skipped a torn line in %s", path)
    return rows


def _write_json_atomically(path: Path, payload: dict) -> None:
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}")
    temporary.write_text(json.dumps(payload, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(temporary, path)


def _is_run_folder(output_dir: Path) -> bool:
    return (output_dir / RUN_FILE).is_file() or (output_dir / ADAPTER_CONFIG_FILE).is_file()


def recover_interrupted_save(output_dir: Path) -> None:
    """Finish or undo a folder swap that a crash interrupted (see `save_adapter_atomically`)."""
    output_dir = Path(output_dir)
    parent = output_dir.parent
    if not parent.is_dir():
        return
    retired = sorted(parent.glob(f".{output_dir.name}.old-*"))
    if not output_dir.exists() and retired:
        # The crash came between the two renames: the retired folder is the last complete adapter.
        os.rename(retired[-1], output_dir)
        logger.warning("restored %s from an interrupted save", output_dir)
        retired = retired[:-1]
    for leftover in [*retired, *parent.glob(f".{output_dir.name}.saving-*")]:
        shutil.rmtree(leftover, ignore_errors=True)


class RunExistsError(ValueError):
    """The output folder already contains a run, and neither resume nor overwrite was requested."""


def plan_output_dir(output_dir: Path, config: FineTuneConfig, data_sha256: str, resume: bool,
                    overwrite: bool) -> Path | None:
    """Check that a run may start in `output_dir`; return the checkpoint to resume from, if any.

    Raises RunExistsError when the folder contains a run and neither `resume`
    nor `overwrite` is set, and ValueError when the folder is something else
    or a resume would change the training file or a setting outside
    RESUMABLE_CHANGES. Reads only, so every
    process of a multi-process run can call it.
    """
    if output_dir.exists() and not output_dir.is_dir():
        raise ValueError(f"The output {output_dir} is a file; give a folder path.")
    if resume:
        info = read_run_info(output_dir)
        if info is None:
            raise ValueError(f"{output_dir} contains no fine-tuning run to resume ({RUN_FILE} is missing); "
                             "start a new run instead.")
        _check_resumable(info, config, data_sha256)
        checkpoint = get_last_checkpoint(str(output_dir / CHECKPOINTS_DIR)) \
            if (output_dir / CHECKPOINTS_DIR).is_dir() else None
        if checkpoint is None:
            raise ValueError(f"{output_dir} has no checkpoint to resume from (the run stopped before its first "
                             "save); start a new run instead.")
        return Path(checkpoint)
    if output_dir.is_dir() and any(output_dir.iterdir()):
        if not _is_run_folder(output_dir):
            raise ValueError(f"{output_dir} exists and is not a fine-tuning output folder; "
                             "choose a new or empty folder.")
        if not overwrite:
            raise RunExistsError(f"{output_dir} already contains a fine-tuning run.")
    return None


def _check_resumable(info: dict, config: FineTuneConfig, data_sha256: str) -> None:
    if info.get("data_sha256") != data_sha256:
        raise ValueError(f"The training file differs from the one this run started with "
                         f"({info.get('data_name', 'unknown')}); resume with that file or start a new run.")
    saved = FineTuneConfig.from_dict(info["config"]).to_dict()
    current = config.to_dict()
    for name, value in saved.items():
        if name not in RESUMABLE_CHANGES and current.get(name) != value:
            raise ValueError(f"Cannot resume with {name}={current.get(name)!r}: the run was started with "
                             f"{name}={value!r}. Resume with the saved settings or start a new run.")


def prepare_output_dir(output_dir: Path, checkpoint: Path | None) -> list[dict]:
    """Clear an overwritten run's checkpoints and log, or cut a resumed log at the checkpoint.

    Returns the log rows kept. Main process only.
    """
    output_dir.mkdir(parents=True, exist_ok=True)
    log_path = output_dir / LOG_FILE
    if checkpoint is None:
        shutil.rmtree(output_dir / CHECKPOINTS_DIR, ignore_errors=True)
        log_path.unlink(missing_ok=True)
        return []
    # Rows after the checkpoint were logged by steps that the resumed run repeats.
    resumed_step = int(checkpoint.name.rsplit("-", 1)[-1])
    kept = [row for row in read_train_log(output_dir) if row.get("step", 0) <= resumed_step]
    temporary = log_path.with_name(f".{LOG_FILE}.{uuid.uuid4().hex[:8]}")
    temporary.write_text("".join(json.dumps(row) + "\n" for row in kept), encoding="utf-8")
    os.replace(temporary, log_path)
    return kept


def _link_or_copy(source: str, destination: str) -> None:
    try:
        os.link(source, destination)
    except OSError:
        shutil.copy2(source, destination)


def adapter_card(output_dir: Path, run_info: dict, final_loss: float | None) -> str:
    """Return the README.md of an adapter folder: what it was trained from, with which settings, and how to use it.

    It replaces PEFT's template card, whose fields would stay unfilled.
    """
    config = run_info["config"]
    layers = ", ".join(f"{name} ({count})" for name, count in run_info["lora_layers"].items())
    loss = "none logged" if final_loss is None else f"{final_loss:.6g}"
    length = f"{config['max_steps']} steps" if config.get("max_steps") else f"{config['epochs']} epochs"
    reference = run_info["base_model"]
    return "\n".join([
        "---",
        "library_name: peft",
        "tags: [llada, lora, masked-diffusion]",
        "---",
        "",
        f"# LoRA adapter {output_dir.name}",
        "",
        f"A LoRA adapter for the masked-diffusion model `{reference}`, trained with the LLaDA SFT loss "
        "(cross-entropy on masked response tokens divided by the mask ratio).",
        "",
        "| | |",
        "| --- | --- |",
        f"| base model | `{reference}` |",
        f"| training file | `{run_info['data_name']}` (sha256 `{run_info['data_sha256'][:16]}…`) |",
        f"| records / training items | {run_info['n_records']} / {run_info['n_items']} ({config['mode']} mode) |",
        f"| steps | {run_info['global_step']} of {run_info['max_steps']} ({run_info['status']}) |",
        f"| final logged loss | {loss} |",
        f"| training time | {run_info['train_seconds']} s |",
        f"| LoRA | rank {config['lora_r']}, alpha {config['lora_alpha']}, dropout {config['lora_dropout']}, "
        f"on {layers} |",
        f"| trainable parameters | {run_info['trainable_parameters']:,} of {run_info['total_parameters']:,} |",
        f"| optimisation | learning rate {config['learning_rate']}, {config['lr_scheduler']} schedule, "
        f"warmup ratio {config['warmup_ratio']}, batch size {config['batch_size']} × "
        f"{config['gradient_accumulation']} accumulation, {length}, seed {config['seed']} |",
        "",
        "## Use",
        "",
        "Put the folder under the page's `workspace/adapters/` and pick it in the LoRA adapter list, or run:",
        "",
        f"    python -m llada_cot generate --model {reference} --adapter path/to/{output_dir.name} --prompt \"...\"",
        "",
        f"`{LOG_FILE}` has the loss and learning rate of every logged step, and `{RUN_FILE}` every setting.",
        "",
    ])


def save_adapter_atomically(model, output_dir: Path, card: str | None = None) -> None:
    """Write the adapter of `model` to `output_dir`, replacing the old one only when complete.

    `card`, when given, replaces the README.md that PEFT writes.

    The adapter is saved into a new folder beside `output_dir`, the run's
    other files (log, checkpoints, finetune.json) are hard-linked into it, and
    two renames swap the folders. A crash between the renames leaves the old
    folder under a hidden name, which `recover_interrupted_save` restores.
    """
    output_dir = Path(output_dir)
    parent = output_dir.parent
    parent.mkdir(parents=True, exist_ok=True)
    staging = parent / f".{output_dir.name}.saving-{uuid.uuid4().hex[:8]}"
    staging.mkdir()
    try:
        model.save_pretrained(str(staging))
        if card is not None:
            (staging / "README.md").write_text(card, encoding="utf-8")
        if output_dir.is_dir():
            for entry in output_dir.iterdir():
                if entry.name in ADAPTER_FILES or entry.name.startswith("."):
                    continue
                if entry.is_dir():
                    shutil.copytree(entry, staging / entry.name, copy_function=_link_or_copy)
                else:
                    _link_or_copy(str(entry), str(staging / entry.name))
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    if output_dir.exists():
        retired = parent / f".{output_dir.name}.old-{uuid.uuid4().hex[:8]}"
        os.rename(output_dir, retired)
        os.rename(staging, output_dir)
        shutil.rmtree(retired, ignore_errors=True)
    else:
        os.rename(staging, output_dir)


def zip_adapter(output_dir: Path, destination: Path) -> Path:
    """Write the adapter, its log and finetune.json (no checkpoints) into a zip file at `destination`."""
    output_dir = Path(output_dir)
    if not (output_dir / ADAPTER_CONFIG_FILE).is_file():
        raise ValueError(f"{output_dir} contains no finished adapter to download yet.")
    destination.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(destination, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name in (*ADAPTER_FILES, LOG_FILE, RUN_FILE):
            path = output_dir / name
            if path.is_file():
                archive.write(path, arcname=f"{output_dir.name}/{name}")
    return destination


# --- Trainer callbacks ------------------------------------------------------------------------


def _any_process(flag: bool) -> bool:
    """Return True on every process when `flag` is True on any, so all processes stop at the same step."""
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return flag
    device = "cuda" if torch.distributed.get_backend() == "nccl" else "cpu"
    value = torch.tensor([int(flag)], device=device)
    torch.distributed.all_reduce(value, op=torch.distributed.ReduceOp.MAX)
    return bool(value.item())


class StopAndProgressCallback(TrainerCallback):
    """Report progress after each optimizer step and end training when `stop_event` is set.

    Stopping, like the last step, also logs and saves a checkpoint, so the log
    ends with the final loss and a later resume starts at exactly the step
    where this run ended.
    """

    def __init__(self, stop_event: threading.Event | None,
                 on_progress: Callable[[int, int], None] | None):
        self.stop_event = stop_event
        self.on_progress = on_progress
        self.stopped = False

    def on_train_begin(self, args, state, control, **kwargs):
        if self.on_progress is not None:
            self.on_progress(state.global_step, state.max_steps)

    def on_step_end(self, args, state, control, **kwargs):
        if self.on_progress is not None:
            self.on_progress(state.global_step, state.max_steps)
        if _any_process(self.stop_event is not None and self.stop_event.is_set()):
            self.stopped = True
            control.should_training_stop = True
        if self.stopped or state.global_step >= state.max_steps:
            control.should_log = True
            control.should_save = True
        return control


class TrainLogCallback(TrainerCallback):
    """Append step, loss and learning rate of each logging step to train_log.jsonl (main process)."""

    def __init__(self, path: Path, on_log: Callable[[dict], None] | None, elapsed_offset_s: float = 0.0):
        self.path = path
        self.report_row = on_log  # not `self.on_log`, which would hide the callback method
        self.elapsed_offset_s = elapsed_offset_s
        self.started = time.perf_counter()

    def on_train_begin(self, args, state, control, **kwargs):
        self.started = time.perf_counter()

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not state.is_world_process_zero or not logs or "loss" not in logs:
            return
        row = {
            "step": state.global_step,
            "loss": round(float(logs["loss"]), 6),
            "learning_rate": float(logs.get("learning_rate", 0.0)),
            "epoch": round(float(state.epoch or 0.0), 4),
            "elapsed_s": round(self.elapsed_offset_s + time.perf_counter() - self.started, 2),
        }
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(row) + "\n")
        if self.report_row is not None:
            self.report_row(row)


# --- Running a job ----------------------------------------------------------------------------


@dataclass
class FineTuneResult:
    """The outcome of `fine_tune`."""

    output_dir: Path
    status: str  # DONE or STOPPED
    global_step: int
    max_steps: int
    train_seconds: float
    n_records: int
    n_items: int
    lora: LoraSummary
    final_loss: float | None = None
    log: list[dict] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {
            "output_dir": str(self.output_dir), "status": self.status, "global_step": self.global_step,
            "max_steps": self.max_steps, "train_seconds": round(self.train_seconds, 1),
            "n_records": self.n_records, "n_items": self.n_items, "final_loss": self.final_loss,
            "trainable_parameters": self.lora.trainable_parameters,
            "total_parameters": self.lora.total_parameters, "lora_layers": self.lora.matches,
        }


def training_arguments(config: FineTuneConfig, checkpoints_dir: Path, device: torch.device,
                       progress_bar: bool) -> TrainingArguments:
    """Map a FineTuneConfig onto Trainer's arguments."""
    on_gpu = device.type == "cuda"
    return TrainingArguments(
        output_dir=str(checkpoints_dir),
        max_steps=config.max_steps if config.max_steps is not None else -1,
        num_train_epochs=config.epochs,
        per_device_train_batch_size=config.batch_size,
        gradient_accumulation_steps=config.gradient_accumulation,
        learning_rate=config.learning_rate,
        lr_scheduler_type=config.lr_scheduler,
        warmup_steps=config.warmup_ratio,  # a value below 1 is a share of the total steps
        weight_decay=config.weight_decay,
        max_grad_norm=1.0,
        logging_steps=config.logging_steps,
        logging_first_step=True,
        save_steps=config.save_steps,
        save_total_limit=config.save_total_limit,
        seed=config.seed,
        activation_checkpointing=config.gradient_checkpointing,
        # NOTE: bf16 autocast is chosen for CUDA without a GPU test in this repository.
        bf16=on_gpu and torch.cuda.is_bf16_supported(),
        use_cpu=not on_gpu,
        report_to=[],
        remove_unused_columns=False,  # the collator needs n_clean, which the model does not take
        dataloader_pin_memory=on_gpu,
        ddp_find_unused_parameters=False,
        disable_tqdm=not progress_bar,
    )


def fine_tune(base: LoadedModel, data: Path, config: FineTuneConfig, output_dir: Path, *,
              resume: bool = False, overwrite: bool = False, stop_event: threading.Event | None = None,
              on_log: Callable[[dict], None] | None = None, on_progress: Callable[[int, int], None] | None = None,
              progress_bar: bool = False, training_file: TrainingFile | None = None) -> FineTuneResult:
    """Fine-tune `base` with LoRA on the training JSONL `data` and save the adapter in `output_dir`.

    `base.model` gets the LoRA layers in place, so pass a copy that nothing
    else uses. `on_log` receives each train_log.jsonl row (the rows kept from
    before a resume first), `on_progress` the step and total after each
    optimizer step. Setting `stop_event` ends the run after the current step
    with a checkpoint and a loadable adapter. Raises DataFileError for an
    invalid file, RunExistsError (see `plan_output_dir`), and ValueError for
    invalid settings or an unusable output folder.
    """
    config.validate()
    output_dir = Path(output_dir)
    if training_file is None:
        training_file = read_training_file(data)
    data_sha256 = file_sha256(data)
    dataset = build_dataset(training_file.records, base.tokenizer, base.ids, config.mode, config.pad_response_to,
                            max_length=getattr(base.model.config, "max_sequence_length", None))

    state = PartialState()
    if state.is_main_process:
        recover_interrupted_save(output_dir)
    state.wait_for_everyone()
    checkpoint = plan_output_dir(output_dir, config, data_sha256, resume, overwrite)
    kept_rows: list[dict] = []
    if state.is_main_process:
        kept_rows = prepare_output_dir(output_dir, checkpoint)
    state.wait_for_everyone()

    set_seed(config.seed)  # the LoRA initialisation draws from the global generator
    model, lora = apply_lora(base.model, config)
    logger.info("fine-tuning %s on %s (%d records, %d %s items): %s", base.reference, data,
                len(training_file.records), len(dataset), config.mode, lora.describe())

    progress = StopAndProgressCallback(stop_event, on_progress)
    elapsed_offset = kept_rows[-1].get("elapsed_s", 0.0) if kept_rows else 0.0
    log_callback = TrainLogCallback(output_dir / LOG_FILE, on_log, elapsed_offset)
    trainer = LLaDASFTTrainer(
        model=model, args=training_arguments(config, output_dir / CHECKPOINTS_DIR, base.device, progress_bar),
        train_dataset=dataset, data_collator=SFTCollator(base.ids), callbacks=[progress, log_callback],
    )
    if not progress_bar:
        trainer.remove_callback(PrinterCallback)  # without a bar, Trainer would print every log dict
    run_info = {
        "base_model": base.reference, "data_name": Path(data).name, "data_sha256": data_sha256,
        "n_records": len(training_file.records), "n_items": len(dataset), "config": config.to_dict(),
        "trainable_parameters": lora.trainable_parameters, "total_parameters": lora.total_parameters,
        "lora_layers": lora.matches, "status": RUNNING,
    }
    if state.is_main_process:
        _write_json_atomically(output_dir / RUN_FILE, run_info)
        if on_log is not None:
            for row in kept_rows:
                on_log(row)

    started = time.perf_counter()
    trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
    train_seconds = time.perf_counter() - started
    status = STOPPED if progress.stopped else DONE

    log = read_train_log(output_dir) if state.is_main_process else []
    result = FineTuneResult(
        output_dir=output_dir, status=status, global_step=trainer.state.global_step,
        max_steps=trainer.state.max_steps, train_seconds=train_seconds, n_records=len(training_file.records),
        n_items=len(dataset), lora=lora, final_loss=log[-1]["loss"] if log else None, log=log,
    )
    if state.is_main_process:
        run_info.update(status=status, global_step=result.global_step, max_steps=result.max_steps,
                        train_seconds=round(elapsed_offset + train_seconds, 1))
        _write_json_atomically(output_dir / RUN_FILE, run_info)
        save_adapter_atomically(model, output_dir, card=adapter_card(output_dir, run_info, result.final_loss))
    state.wait_for_everyone()
    logger.info("fine-tuning %s after step %d of %d (%.0f s); adapter in %s", status, result.global_step,
                result.max_steps, train_seconds, output_dir)
    return result
