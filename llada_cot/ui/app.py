"""Assemble the page from its tabs."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import gradio as gr

from llada_cot.ui.evaluate import build_evaluate_tab
from llada_cot.ui.finetune import build_finetune_tab
from llada_cot.ui.i18n import I18N
from llada_cot.ui.compare import build_compare_tab
from llada_cot.ui.playground import build_playground_tab
from llada_cot.ui.runtime import Runtime

logger = logging.getLogger(__name__)

DATASETS_DIR = Path(__file__).resolve().parents[2] / "datasets"
N_EXAMPLES = 5


def example_prompts(path: Path = DATASETS_DIR / "test.jsonl", limit: int = N_EXAMPLES) -> list[str]:
    """Return the first prompts of the bundled test set, or none when it is missing."""
    if not path.is_file():
        logger.warning("no example problems: %s is missing", path)
        return []
    prompts = []
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                prompts.append(json.loads(line)["prompt"])
            if len(prompts) == limit:
                break
    return prompts


# Gradio 6.31 collapses the line breaks of a toast message, so a multi-line error would run into one
# paragraph. The selector is Gradio's own class name and may need updating for a later version.
PAGE_CSS = ".toast-message-text { white-space: pre-line; }"


def served_folders(runtime: Runtime) -> list[str]:
    """Return the workspace folders whose files the page offers for download, for launch(allowed_paths=...).

    Gradio 6.31 sends a file that a handler returns only from the current folder, the system temp folder
    or these paths, so without them a workspace elsewhere breaks the downloads. Uploads stay private.
    """
    return [str(runtime.downloads_dir), str(runtime.results_dir)]


def build_app(runtime: Runtime) -> gr.Blocks:
    with gr.Blocks(title="LLaDA-CoT Playground") as demo:
        gr.Markdown("# LLaDA-CoT Playground")
        gr.Markdown(I18N("subtitle"))
        examples = example_prompts()
        refreshers = {}
        with gr.Tab(I18N("playground")):
            refreshers.update(build_playground_tab(runtime, examples))
        with gr.Tab(I18N("compare")):
            refreshers.update(build_compare_tab(runtime, examples))
        with gr.Tab(I18N("finetune")):
            refreshers.update(build_finetune_tab(runtime))
        with gr.Tab(I18N("evaluate")):
            build_evaluate_tab(runtime)
        # Text built with the page is English, because no request is known then, so each load rewrites it
        # in the reader's language.
        demo.load(lambda: tuple(refresh() for refresh in refreshers.values()), inputs=None,
                  outputs=list(refreshers), api_name=False, queue=False)
    return demo
