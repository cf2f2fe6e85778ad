"""Turn token ids and trajectories into what the page shows: highlighted tokens and plots."""

from __future__ import annotations

import re
from functools import lru_cache

import plotly.graph_objects as go
from transformers import PreTrainedTokenizerBase

from llada_cot.loading import SpecialIds

# Labels of the live view; the page's legend shows them with these colours.
MASK, NEW, KEPT, END = "mask", "new", "kept", "end"
COLOR_MAP = {MASK: "#d4d4d8", NEW: "#fb923c", KEPT: "#86efac", END: "#e4e4e7"}
MASK_GLYPH = "▒"
END_GLYPH = "·"
# Whitespace would vanish in the view, so it is drawn with visible marks.
WHITESPACE_GLYPHS = str.maketrans({" ": "␣", "\n": "↵", "\t": "⇥"})
# A byte-level token that contains part of a multi-byte character decodes to this alone.
REPLACEMENT_CHARACTER = "\ufffd"
# Shown at the later positions of a character split over several tokens; the first shows the character.
CONTINUATION_GLYPH = "⋯"
# UTF-8 spreads one character over at most four bytes, so at most four tokens.
MAX_TOKENS_PER_CHARACTER = 4
# Characters that change inline Markdown (emphasis, code, links, HTML, tables). CommonMark lets a
# backslash escape any ASCII punctuation character, so escaping these shows them as written.
MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]<>~|])")


def escape_markdown(text: str) -> str:
    """Return `text` with Markdown's special characters escaped, so that it shows as written.

    Messages quote JSON such as ``"\\boxed{7}"``, whose backslashes Markdown would otherwise eat.
    """
    return MARKDOWN_SPECIAL.sub(r"\\\1", text)


class TokenRenderer:
    """Render generated ids as (text, label) pairs for `gr.HighlightedText`."""

    def __init__(self, tokenizer: PreTrainedTokenizerBase, ids: SpecialIds):
        self.ids = ids
        self._tokenizer = tokenizer
        self.token_text = lru_cache(maxsize=65536)(self._token_text)

    def _token_text(self, token_id: int) -> str:
        text = self._tokenizer.decode([token_id], skip_special_tokens=False)
        return text.translate(WHITESPACE_GLYPHS) or "∅"

    def _joined_texts(self, tokens: list[int]) -> dict[int, str]:
        """Return {position: text} for characters split over several committed byte-level tokens.

        The first position of such a run shows the whole character and the others show CONTINUATION_GLYPH,
        so "÷" or a Hangul syllable reads as itself instead of as two or three "\ufffd" cells.
        """
        joined: dict[int, str] = {}
        position = 0
        while position < len(tokens):
            token = tokens[position]
            if token == self.ids.mask or REPLACEMENT_CHARACTER not in self.token_text(token):
                position += 1
                continue
            for end in range(position + 2, min(position + MAX_TOKENS_PER_CHARACTER, len(tokens)) + 1):
                run = tokens[position:end]
                if self.ids.mask in run:
                    break
                text = self._tokenizer.decode(run, skip_special_tokens=False)
                if REPLACEMENT_CHARACTER not in text:
                    joined[position] = text.translate(WHITESPACE_GLYPHS)
                    joined.update((later, CONTINUATION_GLYPH) for later in range(position + 1, end))
                    position = end - 1
                    break
            position += 1
        return joined

    def frame(self, tokens: list[int], new_positions: set[int] | frozenset[int] = frozenset()) -> list[tuple[str, str]]:
        """Label each generated position as mask, new (this step), kept, or end (after the first stop token)."""
        joined = self._joined_texts(tokens)
        pairs = []
        ended = False
        for position, token in enumerate(tokens):
            if token == self.ids.mask:
                pairs.append((MASK_GLYPH, MASK))
                continue
            if token in self.ids.stop_ids:
                ended = True
            if ended:
                # After the first end-of-text or end-of-turn everything is padding, not content.
                pairs.append((END_GLYPH if token in self.ids.stop_ids and pairs and pairs[-1][1] == END
                              else self.token_text(token), END))
            else:
                pairs.append((joined.get(position, self.token_text(token)), NEW if position in new_positions else KEPT))
        return pairs


def commit_plot(row_steps: list[dict], tokens: list[int], renderer: TokenRenderer) -> go.Figure:
    """Return a scatter of the step at which each position was committed, coloured by block."""
    positions, steps, blocks, hover = [], [], [], []
    for event in row_steps:
        for position, token, confidence in zip(event["positions"], event["token_ids"], event["confidences"]):
            positions.append(position)
            steps.append(event["step"])
            blocks.append(event["block"])
            hover.append(f"{renderer.token_text(token)!s} (confidence {confidence:.3f})")
    figure = go.Figure(go.Scatter(
        x=positions, y=steps, mode="markers", text=hover,
        hovertemplate="position %{x}<br>step %{y}<br>%{text}<extra></extra>",
        marker={"color": blocks, "colorscale": "Viridis", "size": 7,
                "colorbar": {"title": {"text": "block"}}},
    ))
    figure.update_layout(xaxis_title="generated position", yaxis_title="step committed",
                         height=320, margin={"l": 50, "r": 20, "t": 30, "b": 45})
    return figure
