"""Run GPU work through Hugging Face ZeroGPU when the app is a Space, unchanged elsewhere."""

from __future__ import annotations

import logging
from collections.abc import Callable

logger = logging.getLogger(__name__)


def on_gpu(function: Callable) -> Callable:
    """Wrap `function` with `spaces.GPU` when the `spaces` package is installed, else return it as is.

    ZeroGPU attaches a GPU only for the duration of a decorated call, so every
    event handler that runs the model goes through this wrapper.
    """
    try:
        import spaces  # present on Hugging Face Spaces only
    except ImportError:
        return function
    logger.info("running %s through spaces.GPU", getattr(function, "__name__", function))
    return spaces.GPU(function)
