"""serve: MLflow's own model server on a logged generator answers /invocations, and says clearly
what is wrong with a bad request."""

from __future__ import annotations

import base64
import io
import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request

import numpy as np
import pytest
from PIL import Image

from harness import cli, sampling, serving
from harness.serve import serve, serve_command
from harness.errors import ConfigError

STARTUP_S = 240  # the server imports TensorFlow and MLflow: slow on a busy 2-core machine


@pytest.fixture(scope="module")
def logged(tmp_path_factory) -> tuple[str, str]:
    """(tracking uri, run id) of a FINISHED run with a tiny random generator."""
    import keras

    from harness import tracking
    from variants import resolve
    from variants.builders import build_generator

    folder = tmp_path_factory.mktemp("store")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(folder)  # ./mlruns lands here
        uri = f"sqlite:///{folder / 'mlflow.db'}"
        keras.utils.set_random_seed(0)
        logger = tracking.RunLogger.start(uri, "horses")
        logger.log_generator(build_generator(resolve("animals_baseline").scaled(0.125)), ["numpy"])
        logger.end("FINISHED")
        yield uri, logger.run_id


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def post(port: int, body) -> tuple[int, dict]:
    """POST ``body`` (a dict, or raw bytes) to /invocations; return (status, JSON reply)."""
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    request = urllib.request.Request(f"http://127.0.0.1:{port}/invocations", data=data,
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as reply:
            return reply.status, json.loads(reply.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


def wait_for_ping(server: subprocess.Popen, port: int, log) -> None:
    deadline = time.monotonic() + STARTUP_S
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"the server exited with {server.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2) as reply:
                if reply.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    pytest.fail(f"no /ping answer within {STARTUP_S} s:\n{log.read_text()[-3000:]}")


def test_the_real_server_answers_by_count_and_seed_and_refuses_bad_requests(logged, tmp_path):
    uri, run_id = logged
    port = free_port()
    log = tmp_path / "server.log"
    # `mlflow models serve -m runs:/ID/generator`, the command line `serve` execs.
    with open(log, "wb") as out:
        server = subprocess.Popen(serve_command(f"runs:/{run_id}/generator", port=port),
                                  env={**os.environ, "MLFLOW_TRACKING_URI": uri},
                                  stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_for_ping(server, port, log)

        status, reply = post(port, {"dataframe_records": [{"seed": 3, "n": 2}]})
        assert status == 200
        rows = reply["predictions"]
        images = np.array([row["image"] for row in rows])
        assert [row["seed"] for row in rows] == [3, 4]
        assert images.shape == (2, 32, 32, 3) and images.min() >= 0 and images.max() <= 255
        generator = sampling.load_generator(uri, sampling.model_uri(uri, run_id=run_id))
        assert np.array_equal(images, sampling.sample(generator, [3, 4]))  # what `sample` draws

        status, reply = post(port, {"inputs": {"seed": [4]}, "params": {"format": "png"}})
        assert status == 200
        png = Image.open(io.BytesIO(base64.b64decode(reply["predictions"][0]["png"])))
        assert np.array_equal(np.asarray(png), images[1])  # same seed, same image

        status, reply = post(port, {"dataframe_records": [{"n": 3}]})
        seeds = [row["seed"] for row in reply["predictions"]]
        assert status == 200 and len(seeds) == 3 and seeds == list(range(seeds[0], seeds[0] + 3))
        again = post(port, {"dataframe_records": [{"seed": seeds[1]}]})[1]["predictions"][0]
        assert again["image"] == reply["predictions"][1]["image"]  # random seeds can be asked again

        for body, words in [
            ({"dataframe_records": [{"n": "many"}]}, "column n"),
            ({"dataframe_records": [{"n": -1}]}, "n=-1 must be at least 1"),
            ({"dataframe_records": [{"n": 100000}]}, f"at most {serving.MAX_IMAGES} per request"),
            ({"dataframe_records": [{"seed": -5}]}, "seed=-5 must be 0 or more"),
            ({"dataframe_records": [{"n": 1}], "params": {"format": "jpeg"}}, "format='jpeg'"),
            ({"dataframe_records": [{"count": 1}]}, "no 'n' or 'seed'"),
            (b"not json", "Invalid input"),
        ]:
            status, reply = post(port, body)
            assert 400 <= status < 500 and words in reply.get("message", ""), (body, status, reply)
    finally:
        try:
            os.killpg(server.pid, signal.SIGTERM)  # its process group: mlflow and uvicorn
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
        except ProcessLookupError:
            pass


def test_serve_execs_mlflow_on_localhost_and_refuses_a_busy_port(logged, monkeypatch):
    uri, run_id = logged

    class Execd(Exception):
        pass

    def execve(path, argv, env):
        raise Execd(argv, env)

    monkeypatch.setattr(os, "execve", execve)
    with pytest.raises(Execd) as execd:
        cli.main(["serve", "--run-id", run_id, "--port", str(free_port()), "--tracking-uri", uri])
    argv, env = execd.value.args
    assert argv[1:6] == ["-m", "mlflow", "models", "serve", "-m"]
    assert argv[6] == sampling.model_uri(uri, run_id=run_id)
    assert argv[argv.index("--host") + 1] == "127.0.0.1"
    assert argv[argv.index("--env-manager") + 1] == "local"
    assert env["MLFLOW_TRACKING_URI"] == uri
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        with pytest.raises(ConfigError, match="another --port"):
            serve("models:/m-1", uri, port=busy.getsockname()[1])
