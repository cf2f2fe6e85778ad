"""The Playground tab: set the sampler, watch the answer denoise, replay it, read its plot."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator

import gradio as gr

from llada_cot.evaluation import solution_from_result
from llada_cot.sampling import GenerationResult, REMASKING_RULES, SamplerConfig, encode_prompts, iter_denoising
from llada_cot.trajectory import Trajectory, replay_tokens
from llada_cot.ui.gpu import on_gpu
from llada_cot.ui.i18n import I18N
from llada_cot.ui.render import COLOR_MAP, TokenRenderer, commit_plot
from llada_cot.ui.runtime import Runtime

logger = logging.getLogger(__name__)

# Frames are sent at most this often; the final frame is always sent.
MIN_FRAME_INTERVAL_S = 0.1
MAX_GEN_LENGTH = 1024


def read_sampler(gen_length, steps, block_length, temperature, cfg_scale, remasking, seed) -> SamplerConfig:
    """Build a validated SamplerConfig from the page's controls; raise gr.Error on bad values."""
    try:
        return SamplerConfig(
            gen_length=int(gen_length), steps=int(steps), block_length=int(block_length),
            temperature=float(temperature), cfg_scale=float(cfg_scale), remasking=str(remasking),
            seed=None if seed in (None, "") else int(seed),
        ).validate()
    except (TypeError, ValueError) as error:
        raise gr.Error(str(error)) from error


def adapter_choices(runtime: Runtime) -> list[tuple[str, str]]:
    """Return dropdown choices: the base model first, then saved adapters, newest first."""
    return [("base model", ""), *[(name, name) for name in runtime.adapter_names()]]


def stats_markdown(solution, notes: list[str], stopped: bool) -> str:
    lines = [f"**NFE** {solution.nfe} · **time** {solution.elapsed_s:.2f} s · "
             f"**generated tokens/s** {solution.tokens_per_s:.1f} ({solution.generated_tokens} tokens)"]
    if stopped:
        lines.append("Stopped before the last step; masked positions remain.")
    lines += [f"- {note}" for note in notes]
    return "\n\n".join(lines)


def live_frame(frame: list) -> tuple:
    """Update only the live view; the other six outputs keep their values until the end."""
    return (frame, *([gr.skip()] * 6))


def run_generation(runtime: Runtime, prompt: str, config: SamplerConfig, session: str,
                   adapter: str | None = None) -> Iterator[tuple]:
    """Yield page updates while denoising; the last update carries the result."""
    try:
        loaded = runtime.model_for(adapter)
    except (OSError, ValueError) as error:
        raise gr.Error(f"Could not load adapter {adapter!r}: {error}") from error
    renderer = TokenRenderer(loaded.tokenizer, loaded.ids)
    stop = runtime.start_run(session)
    try:
        with runtime.compute_lock:
            input_ids, attention_mask = encode_prompts(loaded.tokenizer, [prompt], loaded.ids, loaded.device)
            prompt_length = input_ids.shape[1]
            trajectory = Trajectory(gen_length=config.gen_length, prompt_length=prompt_length, notes=config.notes)
            initial = [loaded.ids.mask] * config.gen_length
            yield live_frame(renderer.frame(initial))

            start = time.perf_counter()
            last_frame = 0.0
            x = None
            nfe = 0
            for event, x in iter_denoising(loaded.model, input_ids, loaded.ids, config, attention_mask):
                trajectory.steps.append(event)
                nfe = event.nfe
                if stop.is_set():
                    break
                now = time.perf_counter()
                if now - last_frame >= MIN_FRAME_INTERVAL_S:
                    last_frame = now
                    tokens = x[0, prompt_length:].tolist()
                    yield live_frame(renderer.frame(tokens, set(event.positions[0])))
            elapsed = time.perf_counter() - start
    finally:
        runtime.finish_run(session, stop)

    if x is None:
        raise gr.Error("The sampler ran no step; check the settings.")
    tokens = x[:, prompt_length:]
    stopped = bool((tokens == loaded.ids.mask).any())
    result = GenerationResult(tokens=tokens, trajectory=trajectory, nfe=nfe, elapsed_s=elapsed,
                              stopped=stopped, notes=config.notes)
    solution = solution_from_result(loaded, prompt, result, row=0)
    row_steps = trajectory.row(0)
    final_tokens = tokens[0].tolist()
    state = {"steps": row_steps, "gen_length": config.gen_length, "tokens": final_tokens}
    last_step = row_steps[-1]["step"] if row_steps else 0
    yield (
        renderer.frame(final_tokens, set(row_steps[-1]["positions"]) if row_steps else set()),
        solution.text,
        solution.answer or "",
        stats_markdown(solution, config.notes, stopped),
        commit_plot(row_steps, final_tokens, renderer),
        gr.Slider(minimum=-1, maximum=last_step, value=last_step, step=1, interactive=True),
        state,
    )


def build_playground_tab(runtime: Runtime, examples: list[str]) -> None:
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
            gen_length = gr.Slider(8, MAX_GEN_LENGTH, value=defaults.gen_length, step=1, label=I18N("gen_length"),
                                   info=I18N("gen_length_info"))
            steps = gr.Slider(1, MAX_GEN_LENGTH, value=defaults.steps, step=1, label=I18N("steps"),
                              info=I18N("steps_info"))
            block_length = gr.Slider(1, MAX_GEN_LENGTH, value=defaults.block_length, step=1,
                                     label=I18N("block_length"), info=I18N("block_length_info"))
            temperature = gr.Slider(0, 2, value=defaults.temperature, step=0.05, label=I18N("temperature"),
                                    info=I18N("temperature_info"))
            cfg_scale = gr.Slider(0, 5, value=defaults.cfg_scale, step=0.1, label=I18N("cfg_scale"),
                                  info=I18N("cfg_scale_info"))
            remasking = gr.Radio(list(REMASKING_RULES), value=defaults.remasking, label=I18N("remasking"),
                                 info=I18N("remasking_info"))
            seed = gr.Number(value=defaults.seed, precision=0, label=I18N("seed"), info=I18N("seed_info"))
            with gr.Row():
                adapter = gr.Dropdown(choices=adapter_choices(runtime), value="", label=I18N("adapter"),
                                      info=I18N("adapter_info"), scale=4)
                refresh_adapters = gr.Button(I18N("refresh"), scale=1, size="sm")

    live = gr.HighlightedText(label=I18N("denoising"), color_map=COLOR_MAP, show_legend=True,
                              show_inline_category=False, combine_adjacent=False)
    with gr.Row():
        final_text = gr.Textbox(label=I18N("final_text"), lines=5, interactive=False)
        answer = gr.Textbox(label=I18N("boxed_answer"), interactive=False)
    stats = gr.Markdown()
    replay = gr.Slider(-1, 0, value=0, step=1, label=I18N("replay"), info=I18N("replay_info"), interactive=False)
    plot = gr.Plot(label=I18N("commit_plot"))
    trajectory_state = gr.State()

    def on_generate(prompt_text, gen_length_value, steps_value, block_value, temperature_value, cfg_value,
                    remasking_value, seed_value, adapter_name, request: gr.Request):
        if not prompt_text or not prompt_text.strip():
            raise gr.Error("The prompt is empty; type a problem or pick an example.")
        config = read_sampler(gen_length_value, steps_value, block_value, temperature_value, cfg_value,
                              remasking_value, seed_value)
        session = request.session_hash or "api"
        yield from run_generation(runtime, prompt_text.strip(), config, session, adapter_name or None)

    def on_stop(request: gr.Request):
        runtime.request_stop(request.session_hash or "api")

    renderer = TokenRenderer(runtime.loaded.tokenizer, runtime.loaded.ids)

    def on_replay(step, state):
        if not state:
            return gr.skip()
        tokens = replay_tokens(state["steps"], state["gen_length"], int(step), runtime.loaded.ids.mask)
        new = next((set(event["positions"]) for event in state["steps"] if event["step"] == int(step)), set())
        return renderer.frame(tokens, new)

    generate_button.click(
        on_gpu(on_generate),
        inputs=[prompt, gen_length, steps, block_length, temperature, cfg_scale, remasking, seed, adapter],
        outputs=[live, final_text, answer, stats, plot, replay, trajectory_state],
        api_name="generate", concurrency_id="compute",
    )
    stop_button.click(on_stop, inputs=None, outputs=None, api_name="stop", queue=False)
    refresh_adapters.click(lambda: gr.Dropdown(choices=adapter_choices(runtime)), outputs=[adapter],
                           api_name=False)
    replay.release(on_replay, inputs=[replay, trajectory_state], outputs=[live], api_name="replay")
