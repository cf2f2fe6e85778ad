"""The Playground tab: set the sampler, watch the answer denoise, replay it, read its plot."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import gradio as gr

from llada_cot.evaluation import Solution, solution_from_result
from llada_cot.loading import LoadedModel, ModelLoadError
from llada_cot.sampling import GenerationResult, SamplerConfig, constraint_tokens, encode_prompts, iter_denoising
from llada_cot.trajectory import Trajectory, replay_tokens
from llada_cot.ui.gpu import on_gpu
from llada_cot.ui import messages
from llada_cot.ui.i18n import I18N
from llada_cot.ui.render import COLOR_MAP, TokenRenderer, commit_plot
from llada_cot.ui.runtime import ModelNotAllowedError, Runtime
from llada_cot.ui.sampler_controls import MAX_GEN_LENGTH, build_sampler_controls, read_sampler

__all__ = ["MAX_GEN_LENGTH", "adapter_choices", "build_playground_tab", "read_sampler", "stream_generation"]

logger = logging.getLogger(__name__)

# Frames are sent at most this often; the final frame is always sent.
MIN_FRAME_INTERVAL_S = 0.1


@dataclass
class Finished:
    """The end of a streamed run: the decoded solution and what the replay needs."""

    solution: Solution
    frame: list
    plot: object
    state: dict
    last_step: int


def adapter_choices(runtime: Runtime) -> list[tuple[str, str]]:
    """Return dropdown choices: the base model first, then saved adapters, newest first."""
    return [(messages.text("base_model"), ""), *[(name, name) for name in runtime.adapter_names()]]


def stats_markdown(solution: Solution, notes: list[str], stopped: bool) -> str:
    lines = [messages.text("stats", nfe=solution.nfe, seconds=solution.elapsed_s, speed=solution.tokens_per_s,
                           tokens=solution.generated_tokens)]
    if stopped:
        lines.append(messages.text("stopped_early"))
    lines += [f"- {messages.localize(note)}" for note in notes]
    return "\n\n".join(lines)


def model_dropdown(runtime: Runtime, **kwargs) -> gr.Dropdown:
    """Return the model picker: the allowed references; a typed one is checked by `resolve_model`."""
    # Typing stays possible so that the server, not Gradio, rejects an unlisted reference, in the reader's language.
    return gr.Dropdown(choices=runtime.model_choices(), value=runtime.loaded.reference, allow_custom_value=True,
                       label=I18N("model"), info=I18N("model_info"), **kwargs)


def resolve_model(runtime: Runtime, adapter: str | None, model: str | None = None) -> LoadedModel:
    """Return the picked model with the adapter; raise gr.Error in the reader's language when that fails."""
    try:
        base = runtime.base_model(model)
    except ModelNotAllowedError as error:
        raise messages.error("model_not_allowed", model=error.reference, allowed=", ".join(error.allowed)) from None
    except ModelLoadError as error:
        raise messages.error("model_load_failed", model=model, error=messages.localize(str(error))) from error
    try:
        return runtime.model_for(adapter, base.reference)
    except (OSError, ValueError) as error:
        raise messages.error("adapter_load_failed", adapter=adapter, error=messages.localize(str(error))) from error


def stream_generation(runtime: Runtime, loaded: LoadedModel, prompt: str, config: SamplerConfig,
                      stop: threading.Event) -> Iterator[list | Finished]:
    """Yield live frames (lists of (text, label)) while denoising, then one `Finished`.

    Frames are throttled to MIN_FRAME_INTERVAL_S; timing covers the sampler only.
    """
    renderer = TokenRenderer(loaded.tokenizer, loaded.ids)
    try:
        fixed = constraint_tokens(config, loaded.tokenizer)
    except ValueError as error:
        raise messages.library_error(error) from error
    with runtime.compute_lock:
        input_ids, attention_mask = encode_prompts(loaded.tokenizer, [prompt], loaded.ids, loaded.device)
        prompt_length = input_ids.shape[1]
        trajectory = Trajectory(gen_length=config.gen_length, prompt_length=prompt_length, notes=config.notes)
        initial = [fixed.get(position, loaded.ids.mask) for position in range(config.gen_length)]
        yield renderer.frame(initial)

        start = time.perf_counter()
        rendering = 0.0
        last_frame = 0.0
        x = None
        nfe = 0
        for event, x in iter_denoising(loaded.model, input_ids, loaded.ids, config, attention_mask, fixed=fixed):
            trajectory.steps.append(event)
            nfe = event.nfe
            if stop.is_set():
                break
            now = time.perf_counter()
            if now - last_frame >= MIN_FRAME_INTERVAL_S:
                last_frame = now
                frame = renderer.frame(x[0, prompt_length:].tolist(), set(event.positions[0]))
                rendering += time.perf_counter() - now
                yield frame
        elapsed = time.perf_counter() - start - rendering

    if x is None:
        raise messages.error("no_step")
    tokens = x[:, prompt_length:]
    stopped = bool((tokens == loaded.ids.mask).any())
    result = GenerationResult(tokens=tokens, trajectory=trajectory, nfe=nfe, elapsed_s=elapsed,
                              stopped=stopped, notes=config.notes)
    solution = solution_from_result(loaded, prompt, result, row=0)
    row_steps = trajectory.row(0)
    final_tokens = tokens[0].tolist()
    last_positions = set(row_steps[-1]["positions"]) if row_steps else set()
    yield Finished(
        solution=solution,
        frame=renderer.frame(final_tokens, last_positions),
        plot=commit_plot(row_steps, final_tokens, renderer),
        state={"steps": row_steps, "gen_length": config.gen_length, "tokens": final_tokens,
               "initial": initial, "adapter": loaded.reference},
        last_step=row_steps[-1]["step"] if row_steps else 0,
    )


def live_frame(frame: list) -> tuple:
    """Update only the live view; the other six outputs keep their values until the end."""
    return (frame, *([gr.skip()] * 6))


def run_generation(runtime: Runtime, prompt: str, config: SamplerConfig, session: str,
                   adapter: str | None = None, model: str | None = None) -> Iterator[tuple]:
    """Yield Playground updates while denoising; the last update carries the result."""
    loaded = resolve_model(runtime, adapter, model)
    stop = runtime.start_run(session)
    try:
        for update in stream_generation(runtime, loaded, prompt, config, stop):
            if not isinstance(update, Finished):
                yield live_frame(update)
                continue
            yield (
                update.frame, update.solution.text, update.solution.answer or "",
                stats_markdown(update.solution, config.notes, update.solution.stopped), update.plot,
                gr.Slider(minimum=-1, maximum=update.last_step, value=update.last_step, step=1, interactive=True),
                update.state,
            )
    finally:
        runtime.finish_run(session, stop)


def cleared_outputs() -> tuple:
    """Return empty values for the seven Playground outputs."""
    return None, "", "", "", None, gr.Slider(minimum=-1, maximum=0, value=0, interactive=False), None


def build_playground_tab(runtime: Runtime, examples: list[str]) -> dict:
    """Build the tab; return the components whose text depends on the reader's language, with their refreshers."""
    defaults = runtime.default_sampler()
    with gr.Row():
        with gr.Column(scale=2):
            prompt = gr.Textbox(label=I18N("prompt"), lines=3, value=examples[0] if examples else "")
            if examples:
                gr.Examples(examples=[[example] for example in examples], inputs=[prompt], label=I18N("examples"))
            with gr.Row():
                generate_button = gr.Button(I18N("generate"), variant="primary")
                stop_button = gr.Button(I18N("stop"), variant="stop")
        with gr.Column(scale=1):
            sampler = build_sampler_controls(defaults)
            with gr.Row():
                # Typed names are allowed so that API callers can use an adapter trained after the page loaded.
                adapter = gr.Dropdown(choices=adapter_choices(runtime), value="", allow_custom_value=True,
                                      label=I18N("adapter"), info=I18N("adapter_info"), scale=4)
                refresh_adapters = gr.Button(I18N("refresh"), scale=1, size="sm")
            model = model_dropdown(runtime)

    live = gr.HighlightedText(label=I18N("denoising"), color_map=COLOR_MAP, show_legend=True,
                              show_inline_category=False, combine_adjacent=False)
    with gr.Row():
        final_text = gr.Textbox(label=I18N("final_text"), lines=5, interactive=False)
        answer = gr.Textbox(label=I18N("boxed_answer"), interactive=False)
    stats = gr.Markdown()
    replay = gr.Slider(-1, 0, value=0, step=1, label=I18N("replay"), info=I18N("replay_info"), interactive=False)
    plot = gr.Plot(label=I18N("commit_plot"))
    trajectory_state = gr.State()

    def on_generate(request: gr.Request, prompt_text, *values):
        *sampler_values, adapter_name, model_name = values
        if not prompt_text or not prompt_text.strip():
            raise messages.error("prompt_empty")
        config = read_sampler(*sampler_values)
        session = request.session_hash or "api"
        yield from run_generation(runtime, prompt_text.strip(), config, session, adapter_name or None,
                                  model_name or None)

    def on_stop(request: gr.Request):
        runtime.request_stop(request.session_hash or "api")

    renderer = TokenRenderer(runtime.loaded.tokenizer, runtime.loaded.ids)

    def on_replay(step, state):
        if not state:
            return gr.skip()
        tokens = replay_tokens(state["steps"], state["gen_length"], int(step), runtime.loaded.ids.mask,
                               initial=state.get("initial"))
        new = next((set(event["positions"]) for event in state["steps"] if event["step"] == int(step)), set())
        return renderer.frame(tokens, new)

    # Clear the last result first, so that a rejected request never leaves it beside the error.
    generate_button.click(
        cleared_outputs, outputs=[live, final_text, answer, stats, plot, replay, trajectory_state],
        api_name=False, queue=False,
    ).then(
        on_gpu(on_generate),
        inputs=[prompt, *sampler, adapter, model],
        outputs=[live, final_text, answer, stats, plot, replay, trajectory_state],
        api_name="generate", concurrency_id="compute",
    )
    stop_button.click(on_stop, inputs=None, outputs=None, api_name="stop", queue=False)
    refresh_adapters.click(lambda: gr.Dropdown(choices=adapter_choices(runtime)), outputs=[adapter],
                           api_name=False)
    replay.release(on_replay, inputs=[replay, trajectory_state], outputs=[live], api_name="replay")
    return {adapter: lambda: gr.Dropdown(choices=adapter_choices(runtime))}
