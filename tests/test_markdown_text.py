"""Text that the page shows through Markdown keeps its backslashes, underscores and asterisks."""

from __future__ import annotations

import html
import re

import pytest
from markdown_it import MarkdownIt

from llada_cot.data import TRAINING_EXAMPLE
from llada_cot.ui import finetune
from llada_cot.ui.render import escape_markdown


def rendered_text(markdown: str) -> str:
    """Return the text that CommonMark renders from `markdown`, tags and entities removed."""
    return html.unescape(re.sub(r"<[^>]+>", "", MarkdownIt("commonmark").render(markdown))).strip()


@pytest.mark.parametrize("text", [
    TRAINING_EXAMPLE,
    'Add "answer": "\\\\boxed{7}".',
    "my_train_file*.jsonl",
    "a <b> and `code` and [link](x) and ~x~ and a|b",
])
def test_escaped_text_renders_as_written(text):
    assert rendered_text(escape_markdown(text)) == text


def test_empty_file_report_shows_json_example(tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("", encoding="utf-8")
    report, _, path = finetune.validate_training_source(None, str(empty), None, "stepwise")
    assert path is None
    # The example in the report must still be valid JSON after Markdown rendering: "\\boxed{7}".
    assert TRAINING_EXAMPLE in rendered_text(report)


def test_underscored_file_name_not_emphasis(tmp_path):
    upload = tmp_path / "_draft_.jsonl"
    upload.write_text('{"prompt": "What is 2 + 3?", "rationales": ["2 + 3 = 5"], "answer": "\\\\boxed{5}"}\n',
                      encoding="utf-8")

    class Uploads:
        uploads_dir = tmp_path / "uploads"

    report, _, _ = finetune.validate_training_source(Uploads(), str(upload), None, "stepwise")
    assert "_draft_.jsonl" in rendered_text(report)
