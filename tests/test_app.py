"""The page served on a loopback port and called as an API client would."""

import pytest
from gradio_client import Client

from llada_cot.ui.app import build_app, example_prompts
from llada_cot.ui.i18n import I18N
from llada_cot.ui.runtime import Runtime
from page_api import free_port


@pytest.fixture(scope="module")
def client(bundled, tmp_path_factory):
    runtime = Runtime(loaded=bundled, workspace=tmp_path_factory.mktemp("workspace"))
    demo = build_app(runtime)
    demo.queue(default_concurrency_limit=1)
    port = free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True, i18n=I18N)
    yield Client(f"http://127.0.0.1:{port}/", verbose=False)
    demo.close()


def playground_defaults(bundled):
    defaults = bundled.sampler_defaults
    return [defaults["gen_length"], defaults["steps"], defaults["block_length"], 0.0, 0.0, "low_confidence", None]


def test_generate_endpoint_returns_boxed_answer(client, bundled):
    prompt = example_prompts()[0]
    frame, text, answer, stats, plot, replay = client.predict(
        prompt, *playground_defaults(bundled), api_name="/generate")
    assert "\\boxed{" in text
    assert answer
    assert "NFE" in stats
    assert all(entry["class_or_confidence"] != "mask" for entry in frame)


def test_generate_endpoint_reports_bad_settings(client, bundled):
    settings = playground_defaults(bundled)
    settings[2] = settings[0] + 1  # block longer than the generation
    with pytest.raises(Exception, match="block_length"):
        client.predict("What is 2 + 2?", *settings, api_name="/generate")


def test_empty_prompt_is_rejected(client, bundled):
    with pytest.raises(Exception, match="prompt is empty"):
        client.predict("   ", *playground_defaults(bundled), api_name="/generate")


def test_compare_endpoint_reports_speed_up(client, bundled):
    defaults = playground_defaults(bundled)
    vanilla = [*defaults[:6], 0, 0.0, "none", False, False, False, ""]
    fast = [*defaults[:6], 0, 0.9, "dual", False, False, False, ""]
    outputs = client.predict(example_prompts()[0], "", *vanilla, *fast, api_name="/compare")
    summary = outputs[-1]
    assert "Speed-up of B over A" in summary
    assert "fewer forward passes" in summary


def test_constraints_stay_in_the_output(client, bundled):
    settings = playground_defaults(bundled)
    frame, text, *_ = client.predict("What is 2 + 7?", *settings, 0.0, "none", False, False, False, "0:5", "",
                                     api_name="/generate")
    assert text.startswith("5")


def test_concurrent_clients_get_their_own_results(client, bundled):
    from concurrent.futures import ThreadPoolExecutor

    prompts = [f"What is {a} + {b}?" for a, b in [(2, 3), (4, 5), (6, 1), (7, 2), (3, 3), (9, 8), (5, 4), (8, 6)]]
    settings = playground_defaults(bundled)
    expected = {prompt: client.predict(prompt, *settings, api_name="/generate")[1] for prompt in prompts}

    def call(prompt):
        return prompt, client.predict(prompt, *settings, api_name="/generate")[1]

    with ThreadPoolExecutor(max_workers=len(prompts)) as pool:
        results = dict(pool.map(call, prompts))
    assert results == expected


def test_typed_seed_repeats_sampled_output(client, bundled):
    settings = playground_defaults(bundled)
    settings[3] = 1.0  # sampling, so only a fixed seed makes two runs agree
    settings[6] = "3"
    first = client.predict("What is 4 + 5?", *settings, api_name="/generate")[1]
    second = client.predict("What is 4 + 5?", *settings, api_name="/generate")[1]
    assert first == second


def test_empty_seed_box_is_accepted(client, bundled):
    settings = playground_defaults(bundled)
    settings[6] = ""
    frame, text, *_ = client.predict("What is 4 + 5?", *settings, api_name="/generate")
    assert all(entry["class_or_confidence"] != "mask" for entry in frame)


def test_bad_seed_is_rejected(client, bundled):
    settings = playground_defaults(bundled)
    settings[6] = "abc"
    with pytest.raises(Exception, match="seed must be a whole number or empty"):
        client.predict("What is 4 + 5?", *settings, api_name="/generate")


def test_evaluate_endpoint_reads_seed_box(client, bundled):
    # The run name is checked after the sampler settings are read, so an invalid one starts no job.
    sampler = [*playground_defaults(bundled)[:6], "", 0.0, "none", False, False, False, ""]
    with pytest.raises(Exception, match="run name"):
        client.predict(None, "test.jsonl", "", 2, 2, "../empty-seed", False, *sampler, api_name="/evaluate")
    sampler[6] = "abc"
    with pytest.raises(Exception, match="seed must be a whole number or empty"):
        client.predict(None, "test.jsonl", "", 2, 2, "../bad-seed", False, *sampler, api_name="/evaluate")
