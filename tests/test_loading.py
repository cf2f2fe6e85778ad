import pytest

from llada_cot.loading import ModelLoadError, encode_chat_prompt, load_model, special_ids


def test_special_ids_come_from_tokenizer(tokenizer, random_loaded):
    ids = special_ids(tokenizer, random_loaded.model.config)
    assert ids.mask == tokenizer.convert_tokens_to_ids("<|mdm_mask|>")
    assert ids.eos == tokenizer.eos_token_id
    assert ids.eot == tokenizer.convert_tokens_to_ids("<|eot_id|>")
    assert len({ids.mask, ids.eos, ids.eot}) == 3


def test_chat_prompt_uses_template(tokenizer):
    text = tokenizer.decode(encode_chat_prompt(tokenizer, "What is 2 + 2?"))
    assert text.startswith("<|startoftext|><|start_header_id|>user<|end_header_id|>\n\nWhat is 2 + 2?<|eot_id|>")
    assert text.endswith("<|start_header_id|>assistant<|end_header_id|>\n\n")


def test_local_folder_loads(tmp_path, tokenizer, random_loaded):
    random_loaded.model.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    loaded = load_model(str(tmp_path), device="cpu")
    assert loaded.ids == random_loaded.ids
    assert not loaded.model.training


def test_unreachable_hub_names_offline_alternative():
    # Tests run with HF_HUB_OFFLINE=1, so a Hub id cannot be fetched and must fail fast.
    with pytest.raises(ModelLoadError, match="--model tiny"):
        load_model("GSAI-ML/LLaDA-8B-Instruct", device="cpu")


def test_bad_reference_is_explained():
    with pytest.raises(ModelLoadError, match="neither a local folder nor a Hub id"):
        load_model("no-such-model", device="cpu")
