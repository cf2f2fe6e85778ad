"""The sampler controls shared by the Playground, Compare and Evaluate tabs."""

import gradio as gr
import pytest

from llada_cot.sampling import SamplerConfig
from llada_cot.ui.sampler_controls import build_sampler_controls, read_sampler

SEED_INDEX = 6  # position of the seed control in build_sampler_controls' list


def read_with_seed(seed) -> SamplerConfig:
    return read_sampler(48, 48, 16, 0.0, 0.0, "low_confidence", seed)


def test_seed_box_starts_empty():
    with gr.Blocks():
        controls = build_sampler_controls(SamplerConfig())
    seed = controls[SEED_INDEX]
    assert seed.get_config()["value"] == ""


def test_seed_box_shows_fixed_default():
    with gr.Blocks():
        controls = build_sampler_controls(SamplerConfig(seed=5))
    assert controls[SEED_INDEX].get_config()["value"] == "5"


@pytest.mark.parametrize("empty", ["", "   ", None])
def test_empty_seed_means_no_fixed_seed(empty):
    assert read_with_seed(empty).seed is None


@pytest.mark.parametrize(("typed", "expected"), [("0", 0), (" 42 ", 42), (7, 7)])
def test_typed_seed_is_used(typed, expected):
    assert read_with_seed(typed).seed == expected


@pytest.mark.parametrize("bad", ["abc", "1.5", True])
def test_invalid_seed_is_rejected(bad):
    with pytest.raises(gr.Error, match="seed must be a whole number or empty"):
        read_with_seed(bad)


@pytest.mark.parametrize("value", ["false", "true", 1, "yes"])
def test_non_bool_flag_is_rejected(value):
    with pytest.raises(gr.Error, match="early_stop must be True or False"):
        read_sampler(48, 48, 16, 0.0, 0.0, "low_confidence", "", 0.0, "none", False, False, value, "")


def test_missing_flag_means_off():
    config = read_sampler(48, 48, 16, 0.0, 0.0, "low_confidence", "", 0.0, "none", None, None, None, None)
    assert config.early_stop is False
    assert config.suppress_eos_logits is False
