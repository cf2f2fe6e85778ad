"""`python app.py --workspace DIR` keeps what it writes, Gradio's upload cache included, inside DIR."""

import os
import subprocess
import sys
import time
from pathlib import Path

from gradio_client import Client, handle_file

from page_api import arguments, free_port

ROOT = Path(__file__).resolve().parents[1]


def test_uploads_land_in_the_workspace(tmp_path):
    workspace = tmp_path / "workspace"
    port = free_port()
    env = {key: value for key, value in os.environ.items() if key != "GRADIO_TEMP_DIR"}
    env.update(HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")
    server = subprocess.Popen([sys.executable, "app.py", "--model", "tiny", "--port", str(port),
                               "--workspace", str(workspace)], cwd=ROOT, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        client = None
        deadline = time.monotonic() + 120
        while client is None:
            assert server.poll() is None, server.stderr.read()
            assert time.monotonic() < deadline, "the page did not start within 120 s"
            try:
                client = Client(f"http://127.0.0.1:{port}/", verbose=False)
            except Exception:
                time.sleep(1)
        upload = tmp_path / "train.jsonl"
        upload.write_text('{"prompt": "What is 2 + 3?", "rationales": ["2 + 3 = 5"], "answer": "\\\\boxed{5}"}\n')
        report, _ = client.predict(*arguments(client, "/finetune_validate", ft_upload=handle_file(str(upload))),
                                   api_name="/finetune_validate")
        assert "1 record" in report
        cached = list((workspace / "gradio-cache").rglob("train.jsonl"))
        assert cached, "the upload is not in the workspace's Gradio cache"
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_busy_port_is_reported(tmp_path):
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
        result = subprocess.run([sys.executable, "app.py", "--model", "tiny", "--port", str(port),
                                 "--workspace", str(tmp_path / "workspace")], cwd=ROOT, env=env,
                                capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr
    assert "pass --port" in result.stderr
    assert "Traceback" not in result.stderr
