"""Helpers for tests that serve the page on a loopback port and call its API with gradio_client."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from gradio_client import Client

from llada_cot.ui.app import build_app, served_folders
from llada_cot.ui.i18n import I18N
from llada_cot.ui.runtime import Runtime

TRACEBACK_MARKERS = ("Traceback", 'File "')


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def serve(runtime: Runtime) -> Iterator[Client]:
    """Build the page for `runtime`, serve it on 127.0.0.1 as app.py does and yield a client; close it afterwards."""
    demo = build_app(runtime)
    demo.queue(default_concurrency_limit=1)
    port = free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True, i18n=I18N,
                allowed_paths=served_folders(runtime))
    try:
        yield Client(f"http://127.0.0.1:{port}/", verbose=False)
    finally:
        demo.close()


def label_key(label) -> str | None:
    """Return the translation key of a component's label, in the forms the API info and the config use."""
    if isinstance(label, dict):
        return label.get("key")
    if isinstance(label, str) and label.startswith("__i18n__"):
        return json.loads(label[len("__i18n__"):]).get("key")
    return label


def arguments(client: Client, api_name: str, **values) -> list:
    """Return the positional arguments of an endpoint: its defaults, with `values` set by label key.

    Parameters are found by the translation key of their label (such as
    "steps"), so a test keeps working when the page adds a control.
    """
    info = client.view_api(print_info=False, return_format="dict")
    parameters = info["named_endpoints"][api_name]["parameters"]
    keys = [label_key(parameter["label"]) for parameter in parameters]
    for key in values:
        if keys.count(key) != 1:
            raise KeyError(f"{api_name} has {keys.count(key)} parameters labelled {key!r}, expected 1; "
                           f"its labels are {keys}")
    return [values[key] if key in values else parameter.get("parameter_default")
            for key, parameter in zip(keys, parameters)]


def input_choices(client: Client, api_name: str, key: str) -> list:
    """Return the choice values that the page offered, when the client connected, for an endpoint's input."""
    config = client.config
    components = {component["id"]: component for component in config["components"]}
    dependency = next(dependency for dependency in config["dependencies"]
                      if dependency.get("api_name") == api_name.lstrip("/"))
    for component_id in dependency["inputs"]:
        props = components[component_id]["props"]
        if label_key(props.get("label")) == key:
            return [value for _, value in props.get("choices") or []]
    raise KeyError(f"{api_name} has no input labelled {key!r}")


def assert_no_traceback(text: str) -> None:
    for marker in TRACEBACK_MARKERS:
        assert marker not in text, f"a Python traceback reached the client: {text!r}"


def wait_until(condition: Callable[[], bool], timeout_s: float, description: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {description}")
        time.sleep(0.1)
