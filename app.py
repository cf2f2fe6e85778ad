"""Start the LLaDA-CoT Playground page.

    python app.py [--model REF] [--host H] [--port P]
"""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path

from llada_cot.data import MAX_FILE_BYTES
from llada_cot.loading import TINY_MODEL, ModelLoadError, default_reference
from llada_cot.ui.runtime import DEFAULT_WORKSPACE, Runtime

logger = logging.getLogger("llada_cot.app")

# Hugging Face Spaces set the model through this variable in the Space's settings.
MODEL_ENV_VAR = "LLADA_COT_MODEL"
# Comma-separated model references a page may switch to, beside the loaded model and the bundled one.
ALLOWED_MODELS_ENV_VAR = "LLADA_COT_ALLOWED_MODELS"
# Gradio keeps uploads and served files in this folder, which it reads once when it is imported.
GRADIO_CACHE_ENV_VAR = "GRADIO_TEMP_DIR"
GRADIO_CACHE_FOLDER = "gradio-cache"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=os.environ.get(MODEL_ENV_VAR),
                        help=f"'{TINY_MODEL}' (bundled), a local folder or a Hub id; default: ${MODEL_ENV_VAR}, "
                             f"else {default_reference()!r} on this machine")
    parser.add_argument("--device", default=None, help="torch device, such as cpu or cuda:0 (default: cuda if present)")
    # Hugging Face Spaces set GRADIO_SERVER_NAME and GRADIO_SERVER_PORT; a local run stays on loopback.
    parser.add_argument("--host", default=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"),
                        help="address to listen on; 0.0.0.0 exposes the page to your network")
    parser.add_argument("--port", type=int, default=int(os.environ.get("GRADIO_SERVER_PORT", "7860")),
                        help="port to listen on")
    parser.add_argument("--trust-remote-code", action="store_true",
                        help="allow models that are not LLaDA to run code from their repository")
    parser.add_argument("--allow-model", action="append", default=None, metavar="REF",
                        help=f"a model reference the page may switch to (repeatable); default: "
                             f"${ALLOWED_MODELS_ENV_VAR}, comma-separated; '{TINY_MODEL}' is always allowed")
    parser.add_argument("--allow-any-model", action="store_true",
                        help="let the page load any model reference, including local folders; for trusted users only")
    parser.add_argument("--workspace", type=Path, default=DEFAULT_WORKSPACE,
                        help="folder for everything the app writes: adapters, results, uploads, adapter zips")
    parser.add_argument("--share", action="store_true", help="also open a public Gradio share link (off by default)")
    return parser.parse_args(argv)


def allowed_models(args: argparse.Namespace) -> tuple[str, ...]:
    """Return the bundled model and the references from --allow-model, else from the environment."""
    extra = args.allow_model
    if extra is None:
        extra = [reference.strip() for reference in os.environ.get(ALLOWED_MODELS_ENV_VAR, "").split(",")]
    return tuple(dict.fromkeys([TINY_MODEL, *(reference for reference in extra if reference)]))


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # Set before the first Gradio import below, so that uploads land in the workspace too.
    os.environ.setdefault(GRADIO_CACHE_ENV_VAR, str((args.workspace / GRADIO_CACHE_FOLDER).resolve()))
    from llada_cot.ui.app import PAGE_CSS, build_app, served_folders
    from llada_cot.ui.i18n import I18N

    try:
        runtime = Runtime.from_reference(args.model, device=args.device, trust_remote_code=args.trust_remote_code,
                                         workspace=args.workspace, allowed_models=allowed_models(args),
                                         allow_any_model=args.allow_any_model)
    except ModelLoadError as error:
        raise SystemExit(f"error: {error}") from None
    demo = build_app(runtime)
    demo.queue(default_concurrency_limit=1)
    # Uploads larger than the JSONL reader accepts are refused by the server before they reach the disk.
    try:
        demo.launch(server_name=args.host, server_port=args.port, share=args.share, i18n=I18N,
                    max_file_size=MAX_FILE_BYTES, css=PAGE_CSS, allowed_paths=served_folders(runtime))
    except OSError as error:
        # Gradio's own message names launch() parameters, which a command-line user does not pass.
        raise SystemExit(f"error: cannot listen on {args.host}:{args.port} ({error}); pass --port with a free "
                         "port, or stop the program that uses it.") from None


if __name__ == "__main__":
    main()
