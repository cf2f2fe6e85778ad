"""The Compare tab: two sampler settings on one prompt, side by side, with the speed-up."""

from __future__ import annotations

import gradio as gr

from llada_cot.sampling import SamplerConfig
from llada_cot.ui.gpu import on_gpu
from llada_cot.ui import messages
from llada_cot.ui.i18n import I18N
from llada_cot.ui.playground import (Finished, adapter_choices, model_dropdown, resolve_model, stats_markdown,
                                     stream_generation)
from llada_cot.ui.render import COLOR_MAP
from llada_cot.ui.runtime import Runtime
from llada_cot.ui.sampler_controls import build_sampler_controls, read_sampler

N_SAMPLER_CONTROLS = 13


def fast_settings(defaults: SamplerConfig) -> SamplerConfig:
    """Return the defaults with threshold decoding and the dual cache, the usual fast setting."""
    return SamplerConfig(**{**defaults.__dict__, "threshold": 0.9, "cache": "dual"}).validate()


def comparison_markdown(first, second) -> str:
    """Summarise both runs and the speed-up of B over A in forward passes and wall time."""
    a, b = first.solution, second.solution
    nfe_ratio = a.nfe / b.nfe if b.nfe else float("nan")
    time_ratio = a.elapsed_s / b.elapsed_s if b.elapsed_s > 0 else float("nan")
    table = messages.text("compare_table", nfe_a=a.nfe, nfe_b=b.nfe, time_a=a.elapsed_s, time_b=b.elapsed_s,
                          speed_a=a.tokens_per_s, speed_b=b.tokens_per_s, answer_a=a.answer, answer_b=b.answer)
    verdict = "speedup_same" if a.answer == b.answer else "speedup_different"
    return f"{table}\n\n{messages.text(verdict, nfe_ratio=nfe_ratio, time_ratio=time_ratio)}"


def build_compare_tab(runtime: Runtime, examples: list[str]) -> dict:
    """Build the tab; return the components whose text depends on the reader's language, with their refreshers."""
    defaults = runtime.default_sampler()
    prompt = gr.Textbox(label=I18N("prompt"), lines=2, value=examples[0] if examples else "")
    with gr.Row():
        # Typed names are allowed so that API callers can use an adapter trained after the page loaded.
        adapter = gr.Dropdown(choices=adapter_choices(runtime), value="", allow_custom_value=True,
                              label=I18N("adapter"), scale=4)
        compare_button = gr.Button(I18N("compare_run"), variant="primary", scale=1)
        stop_button = gr.Button(I18N("stop"), variant="stop", scale=1)
    model = model_dropdown(runtime)
    views, texts, stats, controls = [], [], [], []
    with gr.Row():
        for name, settings in (("A", defaults), ("B", fast_settings(defaults))):
            with gr.Column():
                gr.Markdown(f"### {name}")
                with gr.Accordion(I18N("compare_settings"), open=False):
                    controls.append(build_sampler_controls(settings, open_advanced=name == "B"))
                views.append(gr.HighlightedText(label=I18N("denoising"), color_map=COLOR_MAP, show_legend=False,
                                                show_inline_category=False))
                texts.append(gr.Textbox(label=I18N("final_text"), lines=4, interactive=False))
                stats.append(gr.Markdown())
    summary = gr.Markdown()

    def on_compare(request: gr.Request, prompt_text, adapter_name, *values):
        *values, model_name = values
        if not prompt_text or not prompt_text.strip():
            raise messages.error("prompt_empty")
        configs = [read_sampler(*values[:N_SAMPLER_CONTROLS]), read_sampler(*values[N_SAMPLER_CONTROLS:])]
        loaded = resolve_model(runtime, adapter_name or None, model_name or None)
        session = request.session_hash or "api"
        stop = runtime.start_run(session)
        finished = []
        try:
            for side, config in enumerate(configs):
                for update in stream_generation(runtime, loaded, prompt_text.strip(), config, stop):
                    outputs = [gr.skip()] * 7
                    if isinstance(update, Finished):
                        finished.append(update)
                        outputs[side] = update.frame
                        outputs[2 + side] = update.solution.text
                        outputs[4 + side] = stats_markdown(update.solution, config.notes, update.solution.stopped)
                    else:
                        outputs[side] = update
                    yield tuple(outputs)
                if stop.is_set():
                    break
        finally:
            runtime.finish_run(session, stop)
        if len(finished) == 2:
            yield (*([gr.skip()] * 6), comparison_markdown(*finished))

    # Clear both sides first, so that a rejected request never leaves an old result beside the error.
    outputs = [*views, *texts, *stats, summary]
    cleared = (None, None, "", "", "", "", "")  # two views, two texts, two stats, the summary
    compare_button.click(lambda: cleared, outputs=outputs, api_name=False, queue=False).then(
        on_gpu(on_compare), inputs=[prompt, adapter, *controls[0], *controls[1], model], outputs=outputs,
        api_name="compare", concurrency_id="compute")

    def on_stop(request: gr.Request):
        runtime.request_stop(request.session_hash or "api")

    stop_button.click(on_stop, inputs=None, outputs=None, api_name=False, queue=False)
    return {adapter: lambda: gr.Dropdown(choices=adapter_choices(runtime))}
