import json
import math
import os
import shutil
import subprocess
import sys
import threading
import warnings
from pathlib import Path

import pytest
import torch
from peft import PeftModel

from llada_cot.adapters import load_with_adapter
from llada_cot.cli import main as cli_main
from llada_cot.finetune import (CHECKPOINTS_DIR, DONE, LOG_FILE, RUN_FILE, STOPPED, fine_tune,
                                recover_interrupted_save, save_adapter_atomically)
from llada_cot.loading import LoadedModel, load_model, special_ids
from llada_cot.synthetic import make_splits
from llada_cot.training import (LLADA_LORA_TARGETS, FineTuneConfig, LLaDASFTTrainer, SFTCollator, TrainingItem,
                                apply_lora, build_items, check_lora_targets, count_target_matches, sft_loss)

from conftest import random_model

RECORD = {"prompt": "Tom has 5 apples. He buys 3 more. He gives away 2. How many apples does Tom have now?",
          "rationales": ["5 + 3 = 8", "8 - 2 = 6"], "answer": "\\boxed{6}"}
# Fast settings for random models: no warmup, no dropout, log every step.
QUICK = dict(lora_r=8, lora_alpha=16, lora_dropout=0.0, learning_rate=5e-3, batch_size=10, warmup_ratio=0.0,
             logging_steps=1, save_steps=5, pad_response_to=0)


@pytest.fixture
def ids(tokenizer):
    return special_ids(tokenizer, random_model(tokenizer).config)


@pytest.fixture(scope="module")
def model_folder(tmp_path_factory, tokenizer):
    folder = tmp_path_factory.mktemp("random-llada")
    random_model(tokenizer, d_model=32, seed=3).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def ten_records_file(tmp_path_factory):
    train, _ = make_splits(10, 1, seed=5)
    path = tmp_path_factory.mktemp("data") / "ten.jsonl"
    path.write_text("".join(json.dumps(record) + "\n" for record in train), encoding="utf-8")
    return path


def fresh_base(model_folder) -> LoadedModel:
    return load_model(str(model_folder), device="cpu")


# --- Loss and forward process -------------------------------------------------------------------


def test_sft_loss_equals_formula_by_hand():
    # Two rows, four positions, three tokens; row 0 has two masked positions, row 1 one.
    logits = torch.tensor([
        [[2.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 3.0], [1.0, 1.0, 1.0]],
        [[0.5, 0.0, 0.0], [0.0, 0.0, 2.0], [1.0, 2.0, 0.0], [0.0, 0.0, 0.0]],
    ])
    target = torch.tensor([[0, 1, 2, 0], [0, 2, 1, 2]])
    masked = torch.tensor([[False, True, False, True], [False, False, True, False]])
    p_mask = torch.tensor([0.5, 0.25])
    response_length = torch.tensor([3, 2])

    def ce(row, position):
        values = logits[row, position]
        return -(values[target[row, position]] - torch.logsumexp(values, dim=0)).item()

    row0 = (ce(0, 1) / 0.5 + ce(0, 3) / 0.5) / 3
    row1 = (ce(1, 2) / 0.25) / 2
    loss = sft_loss(logits, target, masked, p_mask, response_length)
    assert loss.item() == pytest.approx((row0 + row1) / 2, rel=1e-6)


def test_stepwise_items_keep_prompt_and_earlier_steps_clean(tokenizer, ids):
    items = build_items(RECORD, tokenizer, ids, "stepwise", pad_response_to=40)
    assert len(items) == len(RECORD["rationales"]) + 1
    n_clean = [item.n_clean for item in items]
    assert n_clean == sorted(n_clean)
    assert len(set(n_clean)) == len(items)
    # Each clean prefix ends on a rationale line break.
    for item in items[1:]:
        assert tokenizer.decode(item.input_ids[:item.n_clean]).endswith("\n")
    assert tokenizer.decode(items[1].input_ids[items[0].n_clean:items[1].n_clean]) == "5 + 3 = 8\n"

    collator = SFTCollator(ids, generator=torch.Generator().manual_seed(0))
    masked_padding = 0
    for _ in range(50):
        batch = collator(items)
        for row, item in enumerate(items):
            assert not batch["masked"][row, :item.n_clean].any()
            assert torch.equal(batch["input_ids"][row, :item.n_clean], torch.tensor(item.input_ids[:item.n_clean]))
        # The end-of-text padding is response: it is noised and counted.
        padding = batch["target_ids"] == ids.eos
        masked_padding += int((batch["masked"] & padding).sum())
        expected_length = torch.tensor([len(items[0].input_ids) - item.n_clean for item in items])
        assert torch.equal(batch["response_length"], expected_length)
    assert masked_padding > 0


def test_whole_mode_makes_one_item_per_record(tokenizer, ids):
    items = build_items(RECORD, tokenizer, ids, "whole")
    assert len(items) == 1
    prompt_only = build_items({**RECORD, "rationales": []}, tokenizer, ids, "stepwise")
    assert items[0].n_clean == prompt_only[0].n_clean


def test_two_rows_of_5_and_20_answer_tokens(ids):
    short = TrainingItem(input_ids=[10, 11, 12, 13, 14, 15] + [20] * 5, n_clean=6)
    long = TrainingItem(input_ids=[10, 11, 12, 13] + [21] * 20, n_clean=4)
    batch = SFTCollator(ids, generator=torch.Generator().manual_seed(1))([short, long])

    length = 24
    assert batch["input_ids"].shape == (2, length)
    # The shorter row is padded with end-of-text, and that padding is response.
    assert batch["target_ids"][0, 11:].eq(ids.eos).all()
    assert batch["response_length"].tolist() == [length - 6, length - 4]
    assert not batch["masked"][0, :6].any()
    assert not batch["masked"][1, :4].any()
    assert torch.equal(batch["masked"], batch["input_ids"] == ids.mask)

    vocab = max(ids.mask, ids.eos, 21) + 1
    logits = torch.randn(2, length, vocab, generator=torch.Generator().manual_seed(2))
    token_ce = torch.nn.functional.cross_entropy(logits.transpose(1, 2), batch["target_ids"], reduction="none")
    per_row = [(token_ce[row][batch["masked"][row]] / batch["p_mask"][row]).sum() / batch["response_length"][row]
               for row in range(2)]
    loss = sft_loss(logits, batch["target_ids"], batch["masked"], batch["p_mask"], batch["response_length"])
    assert loss.item() == pytest.approx(((per_row[0] + per_row[1]) / 2).item(), rel=1e-5)


def test_mask_ratio_lies_in_eps_to_one(ids):
    items = [TrainingItem(input_ids=list(range(10, 40)), n_clean=5)] * 64
    batch = SFTCollator(ids, eps=1e-3)(items)
    assert (batch["p_mask"] >= 1e-3).all()
    assert (batch["p_mask"] <= 1.0).all()


def test_stratified_ratios_fill_each_slice(ids):
    items = [TrainingItem(input_ids=list(range(10, 40)), n_clean=5)] * 8
    eps = 1e-3
    collator = SFTCollator(ids, eps=eps, generator=torch.Generator().manual_seed(3), stratified=True)
    draws = []
    for _ in range(400):
        t = (collator(items)["p_mask"] - eps) / (1 - eps)
        # One ratio per slice [i/8, (i+1)/8), in shuffled order.
        assert torch.equal((t.sort().values * len(items)).floor().long(), torch.arange(len(items)))
        draws.append(t)
    rows = torch.stack(draws)  # (400, 8)
    # Each row position is still uniform on (0, 1): its mean is 1/2 and it is not tied to one slice.
    assert rows.mean(dim=0).sub(0.5).abs().max() < 0.06
    assert (rows.max(dim=0).values - rows.min(dim=0).values).min() > 0.8


# --- LoRA set-up --------------------------------------------------------------------------------


def test_default_lora_targets_each_match_layers(tokenizer):
    counts = count_target_matches(random_model(tokenizer, n_layers=2), LLADA_LORA_TARGETS)
    for name in ("q_proj", "k_proj", "v_proj", "attn_out", "ff_proj", "up_proj"):
        assert counts[name] == 2, name
    assert counts["ff_out"] == 3  # both blocks' MLP outputs and the LM head


@pytest.mark.parametrize("unknown", ["o_proj", "gate_proj", "down_proj", "not_a_layer"])
def test_unknown_lora_target_lists_valid_names(tokenizer, unknown):
    model = random_model(tokenizer)
    with pytest.raises(ValueError) as error:
        apply_lora(model, FineTuneConfig(target_modules=("q_proj", unknown)).validate())
    message = str(error.value)
    assert repr(unknown) in message
    for name in LLADA_LORA_TARGETS:
        assert name in message


def test_llama_name_points_to_llada_name(tokenizer):
    with pytest.raises(ValueError, match="o_proj -> attn_out"):
        check_lora_targets(random_model(tokenizer), ["o_proj"])


def test_lora_reports_parameter_counts(tokenizer):
    model = random_model(tokenizer, d_model=32, n_layers=2)
    total_before = sum(p.numel() for p in model.parameters())
    peft_model, summary = apply_lora(model, FineTuneConfig(lora_r=4, target_modules=("q_proj",)).validate())
    assert summary.trainable_parameters == 2 * 4 * (32 + 32)
    assert summary.total_parameters == total_before + summary.trainable_parameters
    assert summary.matches == {"q_proj": 2}
    trainable = sum(p.numel() for p in peft_model.parameters() if p.requires_grad)
    assert trainable == summary.trainable_parameters


def test_lora_wrap_raises_no_deprecation_warning(tokenizer):
    model = random_model(tokenizer, d_model=32, n_layers=2)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        apply_lora(model, FineTuneConfig(lora_r=4).validate())
    assert [str(warning.message) for warning in caught if issubclass(warning.category, FutureWarning)] == []


@pytest.mark.parametrize("field, value", [
    ("mode", "causal"), ("lora_r", 0), ("lora_alpha", -1), ("lora_dropout", 1.0), ("target_modules", ()),
    ("target_modules", "q_proj"), ("learning_rate", 0.0), ("max_steps", 0), ("batch_size", 0),
    ("gradient_accumulation", 0), ("warmup_ratio", 1.5), ("lr_scheduler", "exotic"), ("save_steps", 0),
    ("logging_steps", 0), ("seed", -1), ("pad_response_to", -4), ("lora_r", 2.5),
])
def test_finetune_config_rejects_invalid_value(field, value):
    with pytest.raises(ValueError, match=field):
        FineTuneConfig(**{field: value}).validate()


def test_epochs_must_be_positive_without_max_steps():
    with pytest.raises(ValueError, match="epochs"):
        FineTuneConfig(max_steps=None, epochs=0).validate()


# --- The model only receives input_ids -------------------------------------------------------------


def test_model_rejects_labels_and_position_ids(tokenizer):
    model = random_model(tokenizer)
    input_ids = torch.tensor([[5, 6, 7]])
    for extra in ({"labels": input_ids}, {"position_ids": torch.arange(3)[None]}):
        with pytest.raises(TypeError):
            model(input_ids=input_ids, **extra)


def test_lora_forward_backward_with_input_ids_only(tokenizer, ids):
    peft_model, _ = apply_lora(random_model(tokenizer), FineTuneConfig(lora_dropout=0.0).validate())
    peft_model.train()
    batch = SFTCollator(ids)(build_items(RECORD, tokenizer, ids, "stepwise"))
    logits = peft_model(input_ids=batch["input_ids"]).logits
    loss = sft_loss(logits, batch["target_ids"], batch["masked"], batch["p_mask"], batch["response_length"])
    loss.backward()
    lora_grads = [p.grad for name, p in peft_model.named_parameters() if "lora_B" in name]
    assert lora_grads
    for grad in lora_grads:
        assert grad is not None
        assert grad.abs().sum() > 0
    frozen = [p for name, p in peft_model.named_parameters() if "lora_" not in name]
    assert all(p.grad is None for p in frozen)


def test_trainer_step_passes_only_input_ids(tokenizer, ids, tmp_path):
    from transformers import TrainingArguments

    peft_model, _ = apply_lora(random_model(tokenizer), FineTuneConfig(lora_dropout=0.0).validate())
    seen = []
    peft_model.get_base_model().register_forward_pre_hook(
        lambda module, args, kwargs: seen.append(sorted(kwargs)), with_kwargs=True)
    dataset = [{"input_ids": item.input_ids, "n_clean": item.n_clean}
               for item in build_items(RECORD, tokenizer, ids, "stepwise")]
    args = TrainingArguments(output_dir=str(tmp_path), max_steps=2, per_device_train_batch_size=3, report_to=[],
                             remove_unused_columns=False, use_cpu=True, disable_tqdm=True, save_strategy="no")
    trainer = LLaDASFTTrainer(model=peft_model, args=args, train_dataset=dataset, data_collator=SFTCollator(ids))
    trainer.train()
    assert seen
    for kwargs in seen:
        assert kwargs == ["input_ids"]
    assert trainer.state.global_step == 2


def test_gradient_checkpointing_gives_same_gradients(tokenizer, ids):
    batch = SFTCollator(ids, generator=torch.Generator().manual_seed(0))(build_items(RECORD, tokenizer, ids,
                                                                                     "stepwise"))
    gradients = []
    for checkpointing in (False, True):
        peft_model, _ = apply_lora(random_model(tokenizer, seed=1), FineTuneConfig(lora_dropout=0.0).validate())
        torch.manual_seed(0)
        for name, parameter in peft_model.named_parameters():
            if "lora_B" in name:  # non-zero B, so every LoRA matrix gets a gradient
                torch.nn.init.normal_(parameter, std=0.1)
        if checkpointing:
            peft_model.get_base_model().activation_checkpointing_enable()
        peft_model.train()
        base = peft_model.get_base_model()
        assert base.gradient_checkpointing is checkpointing
        logits = peft_model(input_ids=batch["input_ids"]).logits
        sft_loss(logits, batch["target_ids"], batch["masked"], batch["p_mask"], batch["response_length"]).backward()
        gradients.append({name: p.grad.clone() for name, p in peft_model.named_parameters() if p.requires_grad})
    assert gradients[0].keys() == gradients[1].keys()
    for name in gradients[0]:
        assert torch.allclose(gradients[0][name], gradients[1][name], atol=1e-6), name
        assert gradients[1][name].abs().sum() > 0, name


# --- Runs: overfitting, saving, stopping and resuming --------------------------------------------------


def test_ten_examples_overfit(model_folder, ten_records_file, tmp_path):
    config = FineTuneConfig(**{**QUICK, "max_steps": 60, "save_steps": 100}).validate()
    result = fine_tune(fresh_base(model_folder), ten_records_file, config, tmp_path / "run")
    losses = [row["loss"] for row in result.log]
    assert len(losses) == 60
    first, last = sum(losses[:10]) / 10, sum(losses[-10:]) / 10
    assert last < 0.5 * first, (first, last)


def test_run_writes_adapter_log_and_run_file(model_folder, ten_records_file, tmp_path):
    output = tmp_path / "run"
    config = FineTuneConfig(**{**QUICK, "max_steps": 7, "logging_steps": 2}).validate()
    result = fine_tune(fresh_base(model_folder), ten_records_file, config, output)
    assert result.status == DONE
    assert result.global_step == 7
    assert (output / "adapter_config.json").is_file()
    assert (output / "adapter_model.safetensors").is_file()
    rows = [json.loads(line) for line in (output / LOG_FILE).read_text().splitlines()]
    assert [row["step"] for row in rows] == [1, 2, 4, 6, 7]  # the last step is always logged
    for row in rows:
        assert set(row) >= {"step", "loss", "learning_rate"}
        assert math.isfinite(row["loss"])
    info = json.loads((output / RUN_FILE).read_text())
    assert info["status"] == DONE
    assert info["global_step"] == 7
    assert info["trainable_parameters"] == result.lora.trainable_parameters
    # The last step also writes a checkpoint, so a later resume starts at the end.
    assert (output / CHECKPOINTS_DIR / "checkpoint-7").is_dir()
    assert not list(tmp_path.glob(".run.*"))

    card = (output / "README.md").read_text()
    assert card.startswith("---\nlibrary_name: peft\n")
    assert "# LoRA adapter run" in card
    assert f"`{ten_records_file.name}`" in card
    assert "| steps | 7 of 7 (done) |" in card
    assert f"| final logged loss | {rows[-1]['loss']:.6g} |" in card
    assert "More Information Needed" not in card  # PEFT's template is replaced


def test_saved_adapter_reloads_to_identical_logits(model_folder, ten_records_file, tmp_path):
    output = tmp_path / "run"
    base = fresh_base(model_folder)
    fine_tune(base, ten_records_file, FineTuneConfig(**{**QUICK, "max_steps": 10}).validate(), output)
    trained = base.model.eval()  # the PEFT-wrapped model that fine_tune trained
    input_ids = torch.tensor([base.tokenizer.encode("Tom has 4 apples. What is 4 + 4?")])
    with torch.no_grad():
        expected = trained(input_ids=input_ids).logits
        reloaded = PeftModel.from_pretrained(fresh_base(model_folder).model, str(output)).eval()
        assert torch.equal(reloaded(input_ids=input_ids).logits, expected)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            merged = load_with_adapter(fresh_base(model_folder), output)
        assert [str(warning.message) for warning in caught if issubclass(warning.category, FutureWarning)] == []
        # Merging adds the LoRA product into the weights, which rounds differently in float32.
        assert torch.allclose(merged.model(input_ids=input_ids).logits, expected, rtol=1e-4, atol=1e-4)
        untrained = fresh_base(model_folder).model(input_ids=input_ids).logits
    assert not torch.allclose(untrained, expected, atol=1e-3)


def test_stop_leaves_loadable_adapter_and_resume_keeps_steps(model_folder, ten_records_file, tmp_path):
    output = tmp_path / "run"
    config = FineTuneConfig(**{**QUICK, "max_steps": 12, "save_steps": 100}).validate()
    stop = threading.Event()

    def stop_at_step_4(done, total):
        if done >= 4:
            stop.set()

    stopped = fine_tune(fresh_base(model_folder), ten_records_file, config, output, stop_event=stop,
                        on_progress=stop_at_step_4)
    assert stopped.status == STOPPED
    assert stopped.global_step == 4
    assert (output / CHECKPOINTS_DIR / "checkpoint-4").is_dir()
    assert json.loads((output / RUN_FILE).read_text())["status"] == STOPPED
    PeftModel.from_pretrained(fresh_base(model_folder).model, str(output))  # loadable

    replayed = []
    resumed = fine_tune(fresh_base(model_folder), ten_records_file, config, output, resume=True,
                        on_log=replayed.append)
    assert resumed.status == DONE
    assert resumed.global_step == 12
    steps = [row["step"] for row in resumed.log]
    assert steps == list(range(1, 13))
    assert [row["step"] for row in replayed] == steps


def test_resume_after_done_extends_to_new_max_steps(model_folder, ten_records_file, tmp_path):
    output = tmp_path / "run"
    config = FineTuneConfig(**{**QUICK, "max_steps": 3}).validate()
    fine_tune(fresh_base(model_folder), ten_records_file, config, output)
    longer = FineTuneConfig(**{**QUICK, "max_steps": 5}).validate()
    result = fine_tune(fresh_base(model_folder), ten_records_file, longer, output, resume=True)
    assert result.global_step == 5
    assert [row["step"] for row in result.log] == [1, 2, 3, 4, 5]


def test_resume_rejects_changed_settings_and_data(model_folder, ten_records_file, tmp_path):
    output = tmp_path / "run"
    config = FineTuneConfig(**{**QUICK, "max_steps": 2}).validate()
    fine_tune(fresh_base(model_folder), ten_records_file, config, output)
    with pytest.raises(ValueError, match="lora_r"):
        fine_tune(fresh_base(model_folder), ten_records_file, FineTuneConfig(**{**QUICK, "lora_r": 4}), output,
                  resume=True)
    other = tmp_path / "other.jsonl"
    other.write_text(ten_records_file.read_text().splitlines()[0] + "\n")
    with pytest.raises(ValueError, match="training file differs"):
        fine_tune(fresh_base(model_folder), other, config, output, resume=True)


def test_output_folder_rules(model_folder, ten_records_file, tmp_path):
    config = FineTuneConfig(**{**QUICK, "max_steps": 1}).validate()
    unrelated = tmp_path / "notes"
    unrelated.mkdir()
    (unrelated / "todo.txt").write_text("keep me")
    with pytest.raises(ValueError, match="not a fine-tuning output folder"):
        fine_tune(fresh_base(model_folder), ten_records_file, config, unrelated, overwrite=True)
    assert (unrelated / "todo.txt").read_text() == "keep me"
    with pytest.raises(ValueError, match="contains no fine-tuning run to resume"):
        fine_tune(fresh_base(model_folder), ten_records_file, config, tmp_path / "empty", resume=True)

    run = tmp_path / "run"
    fine_tune(fresh_base(model_folder), ten_records_file, config, run)
    with pytest.raises(ValueError, match="already contains a fine-tuning run"):
        fine_tune(fresh_base(model_folder), ten_records_file, config, run)
    result = fine_tune(fresh_base(model_folder), ten_records_file, config, run, overwrite=True)
    assert result.global_step == 1
    assert [row["step"] for row in result.log] == [1]


def test_failed_save_keeps_previous_adapter(model_folder, ten_records_file, tmp_path):
    output = tmp_path / "run"
    base = fresh_base(model_folder)
    fine_tune(base, ten_records_file, FineTuneConfig(**{**QUICK, "max_steps": 2}).validate(), output)
    before = (output / "adapter_model.safetensors").read_bytes()

    class Broken:
        def save_pretrained(self, path):
            Path(path, "adapter_model.safetensors").write_bytes(b"half")
            raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        save_adapter_atomically(Broken(), output)
    assert (output / "adapter_model.safetensors").read_bytes() == before
    assert not list(tmp_path.glob(".run.*"))
    PeftModel.from_pretrained(fresh_base(model_folder).model, str(output))


def test_interrupted_swap_is_recovered(model_folder, ten_records_file, tmp_path):
    output = tmp_path / "run"
    fine_tune(fresh_base(model_folder), ten_records_file, FineTuneConfig(**{**QUICK, "max_steps": 1}).validate(),
              output)
    # A crash between the two renames leaves only the retired folder and the staging folder.
    output.rename(tmp_path / ".run.old-1234abcd")
    (tmp_path / ".run.saving-5678abcd").mkdir()
    recover_interrupted_save(output)
    assert (output / "adapter_config.json").is_file()
    assert not list(tmp_path.glob(".run.*"))


def test_record_longer_than_model_limit_is_named(tokenizer, tmp_path):
    model = random_model(tokenizer)
    model.config.max_sequence_length = 40
    base = LoadedModel(model=model, tokenizer=tokenizer, ids=special_ids(tokenizer, model.config),
                       reference="random")
    data = tmp_path / "long.jsonl"
    data.write_text(json.dumps({"prompt": "What is 1 + 1?", "rationales": ["1 + 1 = 2"] * 12,
                                "answer": "\\boxed{2}"}) + "\n")
    with pytest.raises(ValueError, match="line 1 .* over the model's maximum of 40"):
        fine_tune(base, data, FineTuneConfig(max_steps=1).validate(), tmp_path / "run")


# --- The command line ------------------------------------------------------------------------------


def test_cli_train_writes_adapter_and_log(model_folder, ten_records_file, tmp_path, capsys):
    output = tmp_path / "adapter"
    code = cli_main(["train", "--data", str(ten_records_file), "--output", str(output), "--model", str(model_folder),
                     "--max-steps", "4", "--batch-size", "5", "--lora-r", "4", "--lora-alpha", "8",
                     "--learning-rate", "1e-3", "--mode", "whole"])
    assert code == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["status"] == DONE
    assert summary["global_step"] == 4
    assert summary["n_items"] == 10
    assert (output / "adapter_model.safetensors").is_file()
    rows = [json.loads(line) for line in (output / LOG_FILE).read_text().splitlines()]
    assert rows
    assert {"step", "loss", "learning_rate"} <= set(rows[0])
    config = json.loads((output / RUN_FILE).read_text())["config"]
    assert config["lora_r"] == 4
    assert config["mode"] == "whole"
    assert config["max_steps"] == 4

    # Resuming with a longer run keeps the saved settings and continues the step count.
    code = cli_main(["train", "--data", str(ten_records_file), "--output", str(output), "--model", str(model_folder),
                     "--resume", "--max-steps", "6"])
    assert code == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["global_step"] == 6


def test_cli_train_rejects_existing_run_and_bad_flags(model_folder, ten_records_file, tmp_path, caplog):
    output = tmp_path / "adapter"
    args = ["train", "--data", str(ten_records_file), "--output", str(output), "--model", str(model_folder)]
    assert cli_main([*args, "--max-steps", "1"]) == 0
    assert cli_main([*args, "--max-steps", "1"]) == 2
    assert "--resume" in caplog.text
    assert "--overwrite" in caplog.text
    caplog.clear()
    assert cli_main([*args, "--overwrite", "--target-modules", "q_proj,o_proj"]) == 2
    assert "attn_out" in caplog.text
    caplog.clear()
    assert cli_main([*args, "--overwrite", "--learning-rate", "0"]) == 2
    assert "learning_rate" in caplog.text


MALFORMED_FILES = {
    "empty": (b"", "the file is empty"),
    "blank lines": (b"\n  \n\n", "only blank lines"),
    "png image": (b"\x89PNG\r\n\x1a\n" + b"\x00" * 20, "PNG image"),
    "invalid json": (b'{"prompt": "Solve 3 + 4", "rationales": []\n', "line 1: invalid JSON"),
    "missing field": (b'{"prompt": "Solve 3 + 4", "rationales": ["3 + 4 = 7"]}\n', "line 1, field 'answer': missing"),
    "wrong type": (b'{"prompt": "Solve 3 + 4", "rationales": "3 + 4 = 7", "answer": "7"}\n',
                   "field 'rationales': expected a list"),
    "invalid utf-8": (b'{"prompt": "Solve \xff", "rationales": [], "answer": "7"}\n', "line 1: invalid UTF-8"),
    "json array": (b'[{"prompt": "Solve 3 + 4", "rationales": [], "answer": "7"}]\n', "got a list"),
    "second line bad": (b'{"prompt": "Solve 3 + 4", "rationales": [], "answer": "7"}\n{"prompt": 5}\n',
                        "line 2, field 'prompt': expected a string"),
}


@pytest.mark.parametrize("kind", MALFORMED_FILES)
def test_cli_train_reports_malformed_file(kind, model_folder, tmp_path, caplog):
    content, expected = MALFORMED_FILES[kind]
    data = tmp_path / "bad.jsonl"
    data.write_bytes(content)
    code = cli_main(["train", "--data", str(data), "--output", str(tmp_path / "out"), "--model", str(model_folder)])
    assert code == 2
    assert expected in caplog.text
    assert "Traceback" not in caplog.text
    assert not (tmp_path / "out").exists()


@pytest.mark.skipif(shutil.which("torchrun") is None, reason="torchrun is not installed")
def test_cli_train_on_two_processes(model_folder, ten_records_file, tmp_path):
    output = tmp_path / "adapter"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    command = ["torchrun", "--nproc_per_node", "2", "-m", "llada_cot", "--log-level", "WARNING", "train",
               "--data", str(ten_records_file), "--output", str(output), "--model", str(model_folder),
               "--max-steps", "4", "--batch-size", "2", "--logging-steps", "1"]
    finished = subprocess.run(command, cwd=Path(__file__).resolve().parents[1], env=env, capture_output=True,
                              text=True, timeout=600)
    assert finished.returncode == 0, finished.stderr[-2000:]
    summaries = [line for line in finished.stdout.splitlines() if line.startswith("{\"")]
    assert len(summaries) == 1  # only the main process prints
    assert json.loads(summaries[0])["global_step"] == 4
    rows = [json.loads(line) for line in (output / LOG_FILE).read_text().splitlines()]
    assert [row["step"] for row in rows] == [1, 2, 3, 4]
    # Each process reads its own half of the 30 items, so one epoch is 8 steps of 2 items.
    assert rows[0]["epoch"] == pytest.approx(1 / 8)
    assert (output / "adapter_model.safetensors").is_file()


@pytest.mark.parametrize("readme", ["README.md", "README.ko.md"])
def test_readme_shows_torchrun_for_cpu(readme):
    # accelerate 1.16's `launch --cpu` starts one process, so only torchrun gives several processes on CPUs.
    text = (Path(__file__).resolve().parents[1] / readme).read_text(encoding="utf-8")
    assert "torchrun --nproc_per_node 2 -m llada_cot train" in text
    for line in text.splitlines():
        if "accelerate launch" in line and "-m llada_cot train" in line:
            assert "--multi_gpu" in line, line
