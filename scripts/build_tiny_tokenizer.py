"""Build the bundled tiny model's tokenizer and save it to a folder.

The tokenizer is a byte-level BPE trained on synthetic problems, with every
digit a token of its own (so arithmetic is done digit by digit) and the
special tokens and chat template of LLaDA-8B-Instruct, so the rest of the code
treats the tiny model and the 8B model alike.

    python -m scripts.build_tiny_tokenizer --output assets/tiny-llada
"""

from __future__ import annotations

import argparse
import itertools
import logging
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

from llada_cot.synthetic import ProblemConfig, iter_problems

logger = logging.getLogger(__name__)

BOS, EOS, EOT, MASK = "<|startoftext|>", "<|endoftext|>", "<|eot_id|>", "<|mdm_mask|>"
HEADER_START, HEADER_END = "<|start_header_id|>", "<|end_header_id|>"
SPECIAL_TOKENS = [BOS, EOS, EOT, MASK, HEADER_START, HEADER_END]

# The LLaMA-3 style template of LLaDA-8B-Instruct, written for Jinja.
CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "<|start_header_id|>{{ message['role'] }}<|end_header_id|>\n\n"
    "{{ message['content'] }}<|eot_id|>"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|start_header_id|>assistant<|end_header_id|>\n\n{% endif %}"
)


def training_corpus(n_problems: int, seed: int):
    """Yield prompts and responses of synthetic problems, plus chat-role words."""
    yield "user assistant system"
    # Two-digit operands keep the corpus as it was when the bundled model was trained.
    for record in itertools.islice(iter_problems(seed, ProblemConfig(max_operand=20)), n_problems):
        yield record["prompt"]
        yield "\n".join([*record["rationales"], record["answer"]])


def build_tokenizer(vocab_size: int, n_problems: int, seed: int) -> PreTrainedTokenizerFast:
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False),
    ])
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),  # any text stays encodable
        show_progress=False,
    )
    tokenizer.train_from_iterator(training_corpus(n_problems, seed), trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token=BOS,
        eos_token=EOS,
        pad_token=EOS,  # LLaDA pads with end-of-text during SFT
        mask_token=MASK,
        additional_special_tokens=[EOT, HEADER_START, HEADER_END],
        chat_template=CHAT_TEMPLATE,
        model_max_length=1024,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, required=True, help="folder to write the tokenizer files to")
    parser.add_argument("--vocab-size", type=int, default=512, help="BPE vocabulary size, special tokens included")
    parser.add_argument("--problems", type=int, default=20000, help="synthetic problems to learn merges from")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    tokenizer = build_tokenizer(args.vocab_size, args.problems, args.seed)
    tokenizer.save_pretrained(args.output)
    logger.info("saved a tokenizer of %d tokens to %s", len(tokenizer), args.output)


if __name__ == "__main__":
    main()
