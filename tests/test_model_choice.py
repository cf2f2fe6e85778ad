"""Which models a page may load: the allow list, its flags, and the page's model picker."""

import pytest

import app as app_module
from llada_cot.loading import TINY_MODEL, TINY_MODEL_DIR
from llada_cot.ui.app import example_prompts
from llada_cot.ui.runtime import ModelNotAllowedError, Runtime
from page_api import serve


def test_loaded_model_needs_no_listing(random_loaded, tmp_path):
    runtime = Runtime(loaded=random_loaded, workspace=tmp_path, allowed_models=())
    assert runtime.base_model(None) is random_loaded
    assert runtime.base_model(random_loaded.reference) is random_loaded
    assert runtime.model_choices() == [random_loaded.reference]


@pytest.mark.parametrize("reference", ["/etc", "../assets/tiny-llada", str(TINY_MODEL_DIR), "GSAI-ML/LLaDA-8B-Base"])
def test_unlisted_model_rejected_before_loading(random_loaded, tmp_path, monkeypatch, reference):
    import llada_cot.ui.runtime as runtime_module

    loads = []
    monkeypatch.setattr(runtime_module, "load_model", lambda *args, **kwargs: loads.append(args))
    runtime = Runtime(loaded=random_loaded, workspace=tmp_path, allowed_models=(TINY_MODEL,))
    with pytest.raises(ModelNotAllowedError, match="--allow-model") as caught:
        runtime.base_model(reference)
    assert caught.value.allowed == [random_loaded.reference, TINY_MODEL]
    assert loads == []


def test_allowed_model_loads_once(random_loaded, tmp_path):
    runtime = Runtime(loaded=random_loaded, workspace=tmp_path, allowed_models=(TINY_MODEL,))
    first = runtime.base_model(TINY_MODEL)
    assert first is not random_loaded
    assert first.reference == TINY_MODEL
    assert runtime.base_model(TINY_MODEL) is first


def test_any_model_flag_loads_folder(random_loaded, tmp_path):
    runtime = Runtime(loaded=random_loaded, workspace=tmp_path, allowed_models=(), allow_any_model=True)
    assert runtime.base_model(str(TINY_MODEL_DIR)).reference == str(TINY_MODEL_DIR)


def test_allowed_models_from_flags_or_env(monkeypatch):
    monkeypatch.setenv(app_module.ALLOWED_MODELS_ENV_VAR, "GSAI-ML/LLaDA-8B-Instruct, ./my-model ,")
    args = app_module.parse_args([])
    assert app_module.allowed_models(args) == (TINY_MODEL, "GSAI-ML/LLaDA-8B-Instruct", "./my-model")
    args = app_module.parse_args(["--allow-model", "a/b", "--allow-model", "c/d"])
    assert app_module.allowed_models(args) == (TINY_MODEL, "a/b", "c/d")
    assert app_module.parse_args(["--allow-any-model"]).allow_any_model is True
    assert app_module.parse_args([]).allow_any_model is False


@pytest.fixture(scope="module")
def client(bundled, tmp_path_factory):
    runtime = Runtime(loaded=bundled, workspace=tmp_path_factory.mktemp("workspace"), allowed_models=(TINY_MODEL,))
    with serve(runtime) as page:
        yield page


def generate_args(bundled, model):
    defaults = bundled.sampler_defaults
    return [example_prompts()[0], defaults["gen_length"], defaults["steps"], defaults["block_length"], 0.0, 0.0,
            "low_confidence", "", 0.0, "none", False, False, False, "", "", model]


def test_page_rejects_typed_path(client, bundled):
    with pytest.raises(Exception, match="not on this server's list") as caught:
        client.predict(*generate_args(bundled, "/etc/passwd"), api_name="/generate")
    assert "Traceback" not in str(caught.value)


def test_page_generates_with_allowed_model(client, bundled):
    outputs = client.predict(*generate_args(bundled, TINY_MODEL), api_name="/generate")
    assert "\\boxed{" in outputs[1]
