"""The sampler's controls, shared by the Playground and Compare tabs, and their validation."""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from llada_cot.sampling import CACHE_MODES, REMASKING_RULES, SamplerConfig
from llada_cot.ui import messages
from llada_cot.ui.i18n import I18N

MAX_GEN_LENGTH = 1024


@dataclass(frozen=True)
class OutOfRange:
    """A slider value outside the slider's range, handed on so that the handler reports it."""

    setting: str
    value: object
    minimum: float
    maximum: float


def setting_slider(setting: str, *args, **kwargs) -> gr.Slider:
    """Return a slider whose range error names `setting`, in the reader's language.

    Gradio checks a slider's bounds before the handler runs, with a message that
    names only the value and is always English. This slider passes an
    `OutOfRange` on instead, and `read_sampler` raises the error, where the
    request and so the reader's language are known.
    """
    slider = gr.Slider(*args, **kwargs)
    check = slider.preprocess

    def preprocess(payload):
        try:
            return check(payload)
        except (gr.Error, TypeError, ValueError):
            return OutOfRange(setting, payload, slider.minimum, slider.maximum)

    # Set on the instance: a gr.Slider subclass would make Gradio write a .pyi stub next to this file.
    slider.preprocess = preprocess
    return slider


def setting_radio(*args, **kwargs) -> gr.Radio:
    """Return a radio group that passes any value on, so that `SamplerConfig.validate` names an unknown one.

    Gradio rejects a value outside the choices before the handler runs, with a
    message that lists the choices but not the setting. The page sends only
    listed choices, so only API callers reach the library's check.
    """
    radio = gr.Radio(*args, **kwargs)
    radio.preprocess = lambda payload: payload  # on the instance, as in setting_slider
    return radio


def read_seed(value) -> int | None:
    """Return the seed box's text as an int, or None (no fixed seed) when the box is empty.

    Raises ValueError when the text is not a whole number. API callers may also pass an int.
    """
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    text = "" if value is None else str(value).strip()
    if not text:
        return None
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"seed must be a whole number or empty, got {value!r}.") from None


def read_flag(value):
    """Return a checkbox value, with None (left out by an API caller) as False.

    Anything but True, False or None is passed on for `SamplerConfig.validate`
    to reject, because bool("false") would switch the option on.
    """
    return False if value is None else value


def read_sampler(gen_length, steps, block_length, temperature, cfg_scale, remasking, seed, threshold=0.0,
                 cache="none", suppress_eos_logits=False, suppress_stop_confidence=False, early_stop=False,
                 constraints="") -> SamplerConfig:
    """Build a validated SamplerConfig from the page's controls; raise gr.Error on bad values.

    A threshold of 0 turns threshold decoding off, and an empty seed means no fixed seed.
    """
    for value in (gen_length, steps, block_length, temperature, cfg_scale, threshold):
        if isinstance(value, OutOfRange):
            raise messages.error("out_of_range", setting=value.setting, value=value.value, minimum=value.minimum,
                                 maximum=value.maximum)
    try:
        return SamplerConfig(
            gen_length=int(gen_length), steps=int(steps), block_length=int(block_length),
            temperature=float(temperature), cfg_scale=float(cfg_scale), remasking=str(remasking),
            seed=read_seed(seed),
            threshold=float(threshold) if threshold not in (None, "") and float(threshold) > 0 else None,
            cache=str(cache or "none"), suppress_eos_logits=read_flag(suppress_eos_logits),
            suppress_stop_confidence=read_flag(suppress_stop_confidence), early_stop=read_flag(early_stop),
            constraints=str(constraints or ""),
        ).validate()
    except (TypeError, ValueError) as error:
        raise messages.library_error(error) from error


def build_sampler_controls(defaults: SamplerConfig, open_advanced: bool = False) -> list[gr.components.Component]:
    """Create the controls and return them in `read_sampler`'s argument order."""
    gen_length = setting_slider("gen_length", 8, MAX_GEN_LENGTH, value=defaults.gen_length, step=1,
                                label=I18N("gen_length"), info=I18N("gen_length_info"))
    steps = setting_slider("steps", 1, MAX_GEN_LENGTH, value=defaults.steps, step=1, label=I18N("steps"),
                           info=I18N("steps_info"))
    block_length = setting_slider("block_length", 1, MAX_GEN_LENGTH, value=defaults.block_length, step=1,
                                  label=I18N("block_length"), info=I18N("block_length_info"))
    temperature = setting_slider("temperature", 0, 2, value=defaults.temperature, step=0.05,
                                 label=I18N("temperature"), info=I18N("temperature_info"))
    cfg_scale = setting_slider("cfg_scale", 0, 5, value=defaults.cfg_scale, step=0.1, label=I18N("cfg_scale"),
                               info=I18N("cfg_scale_info"))
    remasking = setting_radio(list(REMASKING_RULES), value=defaults.remasking, label=I18N("remasking"),
                              info=I18N("remasking_info"))
    # A textbox, because Gradio 6.31's gr.Number shows and sends 0 for value=None, with or without a
    # placeholder, which would fix seed 0. An empty textbox stays empty and means no fixed seed.
    seed = gr.Textbox(value="" if defaults.seed is None else str(defaults.seed), label=I18N("seed"),
                      info=I18N("seed_info"), placeholder=I18N("seed_placeholder"), max_lines=1)
    with gr.Accordion(I18N("advanced"), open=open_advanced):
        threshold = setting_slider("threshold", 0, 1, value=defaults.threshold or 0.0, step=0.01,
                                   label=I18N("threshold"), info=I18N("threshold_info"))
        cache = setting_radio(list(CACHE_MODES), value=defaults.cache, label=I18N("cache"), info=I18N("cache_info"))
        suppress_eos_logits = gr.Checkbox(value=defaults.suppress_eos_logits, label=I18N("suppress_eos_logits"),
                                          info=I18N("suppress_eos_logits_info"))
        suppress_stop_confidence = gr.Checkbox(value=defaults.suppress_stop_confidence,
                                               label=I18N("suppress_stop_confidence"),
                                               info=I18N("suppress_stop_confidence_info"))
        early_stop = gr.Checkbox(value=defaults.early_stop, label=I18N("early_stop"), info=I18N("early_stop_info"))
        constraints = gr.Textbox(value=defaults.constraints, label=I18N("constraints"),
                                 info=I18N("constraints_info"), placeholder="0:Once, 5:upon", max_lines=1)
    return [gen_length, steps, block_length, temperature, cfg_scale, remasking, seed, threshold, cache,
            suppress_eos_logits, suppress_stop_confidence, early_stop, constraints]
