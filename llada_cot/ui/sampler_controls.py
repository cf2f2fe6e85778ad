"""The sampler's controls, shared by the Playground and Compare tabs, and their validation."""

from __future__ import annotations

import gradio as gr

from llada_cot.sampling import CACHE_MODES, REMASKING_RULES, SamplerConfig
from llada_cot.ui.i18n import I18N

MAX_GEN_LENGTH = 1024


def read_sampler(gen_length, steps, block_length, temperature, cfg_scale, remasking, seed, threshold=0.0,
                 cache="none", suppress_eos_logits=False, suppress_stop_confidence=False, early_stop=False,
                 constraints="") -> SamplerConfig:
    """Build a validated SamplerConfig from the page's controls; raise gr.Error on bad values.

    A threshold of 0 turns threshold decoding off, and an empty seed means no fixed seed.
    """
    try:
        return SamplerConfig(
            gen_length=int(gen_length), steps=int(steps), block_length=int(block_length),
            temperature=float(temperature), cfg_scale=float(cfg_scale), remasking=str(remasking),
            seed=None if seed in (None, "") else int(seed),
            threshold=float(threshold) if threshold not in (None, "") and float(threshold) > 0 else None,
            cache=str(cache or "none"), suppress_eos_logits=bool(suppress_eos_logits),
            suppress_stop_confidence=bool(suppress_stop_confidence), early_stop=bool(early_stop),
            constraints=str(constraints or ""),
        ).validate()
    except (TypeError, ValueError) as error:
        raise gr.Error(str(error)) from error


def build_sampler_controls(defaults: SamplerConfig, open_advanced: bool = False) -> list[gr.components.Component]:
    """Create the controls and return them in `read_sampler`'s argument order."""
    gen_length = gr.Slider(8, MAX_GEN_LENGTH, value=defaults.gen_length, step=1, label=I18N("gen_length"),
                           info=I18N("gen_length_info"))
    steps = gr.Slider(1, MAX_GEN_LENGTH, value=defaults.steps, step=1, label=I18N("steps"), info=I18N("steps_info"))
    block_length = gr.Slider(1, MAX_GEN_LENGTH, value=defaults.block_length, step=1, label=I18N("block_length"),
                             info=I18N("block_length_info"))
    temperature = gr.Slider(0, 2, value=defaults.temperature, step=0.05, label=I18N("temperature"),
                            info=I18N("temperature_info"))
    cfg_scale = gr.Slider(0, 5, value=defaults.cfg_scale, step=0.1, label=I18N("cfg_scale"),
                          info=I18N("cfg_scale_info"))
    remasking = gr.Radio(list(REMASKING_RULES), value=defaults.remasking, label=I18N("remasking"),
                         info=I18N("remasking_info"))
    seed = gr.Number(value=defaults.seed, precision=0, label=I18N("seed"), info=I18N("seed_info"))
    with gr.Accordion(I18N("advanced"), open=open_advanced):
        threshold = gr.Slider(0, 1, value=defaults.threshold or 0.0, step=0.01, label=I18N("threshold"),
                              info=I18N("threshold_info"))
        cache = gr.Radio(list(CACHE_MODES), value=defaults.cache, label=I18N("cache"), info=I18N("cache_info"))
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
