import json
import time
import zipfile
from pathlib import Path

import gradio as gr
import pytest

from llada_cot.data import read_training_file
from llada_cot.finetune import default_config
from llada_cot.jobs import DONE, FAILED, QUEUED, RUNNING, STOPPED
from llada_cot.loading import LoadedModel, load_model, special_ids
from llada_cot.synthetic import make_splits
from llada_cot.training import FineTuneConfig
from llada_cot.ui import finetune as tab
from llada_cot.ui.runtime import Runtime

from conftest import random_model

DATASETS = Path(__file__).resolve().parents[1] / "datasets"
QUICK = dict(lora_r=4, lora_alpha=8, lora_dropout=0.0, learning_rate=1e-3, batch_size=5, warmup_ratio=0.0,
             logging_steps=1, save_steps=3, pad_response_to=0)


@pytest.fixture(scope="module")
def model_folder(tmp_path_factory, tokenizer):
    folder = tmp_path_factory.mktemp("random-llada")
    random_model(tokenizer, d_model=32).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    (folder / "sampler_config.json").write_text(json.dumps({"gen_length": 24, "steps": 24, "block_length": 8}))
    return folder


@pytest.fixture
def runtime(model_folder, tmp_path):
    return Runtime(loaded=load_model(str(model_folder), device="cpu"), workspace=tmp_path / "workspace")


@pytest.fixture(scope="module")
def ten_records_file(tmp_path_factory):
    train, _ = make_splits(10, 1, seed=9)
    path = tmp_path_factory.mktemp("data") / "ten.jsonl"
    path.write_text("".join(json.dumps(record) + "\n" for record in train), encoding="utf-8")
    return path


def wait_until(condition, timeout=120.0):
    deadline = time.time() + timeout
    while not condition():
        if time.time() > deadline:
            raise AssertionError("timed out waiting for the training job")
        time.sleep(0.05)


# --- File check ------------------------------------------------------------------------------------


def test_report_counts_bundled_file_items(runtime):
    expected = read_training_file(DATASETS / "demo_train.jsonl")
    for mode in ("stepwise", "whole"):
        report, preview, path = tab.validate_training_source(runtime, None, "demo_train.jsonl", mode)
        assert f"{len(expected.records)} records → {expected.n_items(mode)} training items" in report
        assert path == str(DATASETS / "demo_train.jsonl")
        assert list(preview.columns) == tab.PREVIEW_COLUMNS
        assert len(preview) == 20


def test_report_lists_errors_with_line_numbers(runtime, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "Solve 3 + 4", "rationales": ["3 + 4 = 7"], "answer": "7"}\n'
                   '{"prompt": "Solve 1 + 1", "rationales": "1 + 1 = 2", "answer": "2"}\n'
                   'not json\n')
    report, preview, path = tab.validate_training_source(runtime, str(bad), None, "stepwise")
    assert path is None
    assert preview.empty
    assert "2 errors" in report
    assert "- line 2, field 'rationales'" in report
    assert "- line 3: invalid JSON" in report
    assert "Traceback" not in report


def test_report_asks_for_a_file(runtime):
    report, _, path = tab.validate_training_source(runtime, None, None, "stepwise")
    assert path is None
    assert "Upload" in report


def test_bundled_name_must_be_listed(runtime):
    with pytest.raises(gr.Error):
        tab.validate_training_source(runtime, None, "../README.md", "stepwise")


def test_upload_is_copied_into_workspace(runtime, ten_records_file):
    report, _, path = tab.validate_training_source(runtime, str(ten_records_file), None, "whole")
    assert "10 records → 10 training items" in report
    assert Path(path).parent.parent == runtime.uploads_dir
    assert Path(path).name == ten_records_file.name
    assert Path(path).read_bytes() == ten_records_file.read_bytes()


# --- Settings --------------------------------------------------------------------------------------


def controls(**changes):
    values = dict(mode="stepwise", lora_r=8, lora_alpha=16, lora_dropout=0.0, target_modules=["q_proj", "v_proj"],
                  learning_rate=1e-3, max_steps=20, epochs=3, batch_size=4, gradient_accumulation=1,
                  warmup_ratio=0.0, save_steps=10, seed=0, pad_response_to=0, gradient_checkpointing=False)
    values.update(changes)
    return list(values.values())


def test_controls_build_valid_config():
    config = tab.config_from_controls(*controls(max_steps=0, epochs=2))
    assert config.max_steps is None
    assert config.epochs == 2
    assert config.target_modules == ("q_proj", "v_proj")


@pytest.mark.parametrize("changes, expected", [
    ({"learning_rate": None}, "Learning rate is empty"),
    ({"lora_r": 0}, "lora_r"),
    ({"batch_size": 2.5}, "whole number"),
    ({"target_modules": []}, "target_modules"),
    ({"lora_dropout": 1.0}, "lora_dropout"),
])
def test_controls_reject_bad_values(changes, expected):
    with pytest.raises(gr.Error, match=expected):
        tab.config_from_controls(*controls(**changes))


def test_defaults_for_small_model(runtime):
    config = default_config(runtime.loaded)
    assert config.max_steps is not None
    assert config.batch_size == 32
    assert config.pad_response_to == 24  # the model's default generation length
    assert set(config.target_modules) == set(tab.linear_layer_names(runtime.loaded.model))


def test_parameter_summary_counts_lora_parameters(runtime):
    text = tab.parameter_summary(runtime, ["q_proj"], 4)
    assert "**512**" in text  # 2 layers × rank 4 × (32 + 32)
    assert "Pick at least one layer" in tab.parameter_summary(runtime, [], 4)


# --- The job ---------------------------------------------------------------------------------------


def test_start_stop_resume_and_download(runtime, ten_records_file):
    _, _, path = tab.validate_training_source(runtime, str(ten_records_file), None, "stepwise")
    config = FineTuneConfig(**QUICK, max_steps=100_000).validate()
    job = tab.start_training(runtime, path, config, "demo")
    wait_until(lambda: job.snapshot()["done"] >= 2)
    assert tab.stop_training(runtime)
    wait_until(lambda: job.finished)

    snapshot = job.snapshot()
    assert snapshot["status"] == STOPPED, snapshot["error"]
    stopped_at = snapshot["result"]["global_step"]
    assert stopped_at >= 2
    assert runtime.adapter_names() == ["demo"]
    status, figure, download, key = tab.poll(runtime, None)
    assert "Stopped" in status
    assert "Resume" in status
    assert figure.data[0].x[-1] == stopped_at
    with zipfile.ZipFile(snapshot["result"]["zip"]) as archive:
        names = set(archive.namelist())
    assert {"demo/adapter_config.json", "demo/adapter_model.safetensors", "demo/train_log.jsonl"} <= names
    assert not any("checkpoints" in name for name in names)
    # Unchanged state: the poll skips every output.
    assert all(isinstance(value, type(gr.skip())) for value in tab.poll(runtime, key))

    longer = FineTuneConfig(**QUICK, max_steps=stopped_at + 3).validate()
    resumed = tab.start_training(runtime, path, longer, "demo", resume=True)
    wait_until(lambda: resumed.finished)
    result = resumed.snapshot()
    assert result["status"] == DONE, result["error"]
    assert result["result"]["global_step"] == stopped_at + 3
    steps = [event["step"] for event in result["events"]]
    assert steps == list(range(1, stopped_at + 4))


@pytest.mark.parametrize(("key", "start_enabled"), [
    (None, True), (["none"], True), ([1, QUEUED, 0, 0], False), ([1, RUNNING, 5, 1], False),
    ([1, DONE, 10, 2], True), ([1, STOPPED, 5, 1], True), ([1, FAILED, 0, 0], True),
])
def test_button_states_follow_job_status(key, start_enabled):
    start, stop = tab.button_states(key)
    assert start["interactive"] is start_enabled
    assert stop["interactive"] is not start_enabled


@pytest.mark.parametrize("source", ["upload", "bundled"])
def test_restore_view_shows_active_job(runtime, ten_records_file, source):
    upload, bundled = (str(ten_records_file), None) if source == "upload" else (None, "demo_train.jsonl")
    report, _, path = tab.validate_training_source(runtime, upload, bundled, "whole")
    assert tab.restore_view(runtime) is None
    config = FineTuneConfig(**QUICK, mode="whole", max_steps=100_000).validate()
    job = tab.start_training(runtime, path, config, f"restored-{source}")
    try:
        view = tab.restore_view(runtime)
        # The restored values, in the order of the tab's controls, build the job's settings again.
        rebuilt = tab.config_from_controls(view["mode"], *view["settings"])
        for name in ("mode", *tab.RESTORED_SETTINGS):
            assert getattr(rebuilt, name) == getattr(config, name), name
        assert view["adapter"] == f"restored-{source}"
        assert view["data_path"] == path
        assert view["mode"] == "whole"
        assert view["report"] == report
        assert view["bundled"] == bundled
        assert len(view["preview"]) > 0
    finally:
        runtime.jobs.stop(job.id)
        wait_until(lambda: job.finished)
    assert tab.restore_view(runtime) is None


def test_second_job_is_refused_while_one_runs(runtime, ten_records_file):
    _, _, path = tab.validate_training_source(runtime, str(ten_records_file), None, "stepwise")
    first = tab.start_training(runtime, path, FineTuneConfig(**QUICK, max_steps=100_000).validate(), "first")
    try:
        # Outside a page request, gr.Warning is a Python warning.
        with pytest.warns(UserWarning, match="already running"):
            refused = tab.start_training(runtime, path, FineTuneConfig(**QUICK, max_steps=2).validate(), "second")
        assert refused is None
    finally:
        runtime.jobs.stop(first.id)
        wait_until(lambda: first.finished)
    assert "second" not in runtime.adapter_names()


def test_start_rejects_bad_requests(runtime, ten_records_file):
    config = FineTuneConfig(**QUICK, max_steps=1).validate()
    with pytest.raises(gr.Error, match="No valid training file"):
        tab.start_training(runtime, None, config, "ok")
    _, _, path = tab.validate_training_source(runtime, str(ten_records_file), None, "stepwise")
    for name in ("", "../escape", ".hidden", "a" * 65):
        with pytest.raises(gr.Error, match="Adapter name"):
            tab.start_training(runtime, path, config, name)

    job = tab.start_training(runtime, path, config, "taken")
    wait_until(lambda: job.finished)
    with pytest.raises(gr.Error, match="already exists"):
        tab.start_training(runtime, path, config, "taken")
    replaced = tab.start_training(runtime, path, config, "taken", overwrite=True)
    wait_until(lambda: replaced.finished)
    assert replaced.snapshot()["status"] == DONE


def test_failed_job_shows_sentence(tokenizer, ten_records_file, tmp_path):
    model = random_model(tokenizer)
    loaded = LoadedModel(model=model, tokenizer=tokenizer, ids=special_ids(tokenizer, model.config),
                         reference="no-such-model")
    runtime = Runtime(loaded=loaded, workspace=tmp_path)
    job = tab.start_training(runtime, str(ten_records_file), FineTuneConfig(**QUICK, max_steps=1).validate(), "x")
    wait_until(lambda: job.finished)
    status = tab.status_markdown(job.snapshot())
    assert job.status == FAILED
    assert "Error: Model 'no-such-model'" in status
    assert "Traceback" not in status


def test_tab_serves_over_loopback(runtime):
    from gradio_client import Client

    with gr.Blocks() as demo:
        tab.build_finetune_tab(runtime)
    demo.queue().launch(server_name="127.0.0.1", server_port=None, prevent_thread_lock=True, quiet=True)
    try:
        client = Client(demo.local_url, verbose=False)
        report, preview = client.predict(None, "demo_train.jsonl", "whole", api_name="/finetune_validate")
        assert "2000 records → 2000 training items" in report
        client.predict(api_name="/finetune_stop")
        status = client.predict(api_name="/finetune_status")
        assert "No fine-tuning job" in status[0]
    finally:
        demo.close()
