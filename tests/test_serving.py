"""serve: MLflow's scoring app on a logged generator answers /invocations, and says clearly
what is wrong with a bad request, checked on the raw request before MLflow converts it."""

from __future__ import annotations

import asyncio
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
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from harness import cli
from harness.errors import ConfigError
from harness.generators import sampling
from harness.store import generator_model as serving
from harness.store.model_server import (
    MAX_BODY_BYTES,
    MODEL_URI_ENV,
    RequestCheck,
    check_request,
    create_app,
    serve,
    serve_command,
)

STARTUP_S = 240  # the server imports TensorFlow and MLflow: slow on a busy 2-core machine


@pytest.fixture(scope="module")
def logged(tmp_path_factory) -> tuple[str, str]:
    """(tracking uri, run id) of a FINISHED run with a tiny random generator."""
    import keras

    from harness.store import tracking
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


def post(port: int, body, content_type: str = "application/json") -> tuple[int, dict]:
    """POST ``body`` (a dict, or raw bytes) to /invocations; return (status, JSON reply)."""
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    request = urllib.request.Request(f"http://127.0.0.1:{port}/invocations", data=data,
                                     headers={"Content-Type": content_type})
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
    # `python -m harness.store.model_server runs:/ID/generator`, the command line `serve` execs.
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
            ({"dataframe_records": [{"n": "many"}]}, 'n="many" must be a whole number'),
            ({"dataframe_records": [{"n": 2.5}]}, "row 0: n=2.5 must be a whole number"),
            ({"dataframe_records": [{"seed": 1.7}]}, "seed=1.7 must be a whole number"),
            ({"dataframe_records": [{"n": True}]}, "n=true must be a whole number"),
            ({"dataframe_records": [{"n": "5"}]}, 'n="5" must be a whole number'),
            (b'{"dataframe_records": [{"n": 1e300}]}', "n=1e300 is more than the 256 images"),
            (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
            (b" " * (MAX_BODY_BYTES + 1), "larger than"),
            ({"dataframe_records": [{"n": -1}]}, "n=-1 must be at least 1"),
            ({"dataframe_records": [{"n": 100000}]}, f"more than the {serving.MAX_IMAGES} images"),
            ({"dataframe_records": [{"n": 200}, {"n": 100}]}, f"at most {serving.MAX_IMAGES} per request"),
            ({"dataframe_records": [{"seed": -5}]}, "seed=-5 must be at least 0"),
            ({"dataframe_records": [{"n": 1}], "params": {"format": "jpeg"}}, "format='jpeg'"),
            ({"dataframe_records": [{"count": 1}]}, "no 'n' or 'seed'"),
            (b"not json", "not valid JSON"),
        ]:
            status, reply = post(port, body)
            assert 400 <= status < 500 and words in reply.get("message", ""), (str(body)[:80], status, reply)
        status, reply = post(port, b"n\n1\n", content_type="text/csv")
        assert status == 415 and "application/json" in reply["message"]
        status, _ = post(port, {"dataframe_records": [{"seed": 5}]})
        assert status == 200, "the server still answers after every bad request"
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
    assert argv[1:3] == ["-m", "harness.store.model_server"]
    assert argv[3] == sampling.model_uri(uri, run_id=run_id)
    assert argv[argv.index("--host") + 1] == "127.0.0.1"
    assert env["MLFLOW_TRACKING_URI"] == uri
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        with pytest.raises(ConfigError, match="another --port"):
            serve("models:/m-1", uri, port=busy.getsockname()[1])


# --- the request check in-process: MLflow's app behind it, no server ----------------------
def call(app, body: bytes, content_type: str = "application/json", path: str = "/invocations",
         chunks: int = 1) -> tuple[int, dict]:
    """Send one HTTP request to the ASGI ``app`` (the body in ``chunks`` parts); return (status, JSON)."""
    reply: dict = {"body": b""}
    step = max(1, -(-len(body) // chunks))
    parts = [body[i:i + step] for i in range(0, len(body), step)] or [b""]

    async def receive():
        if parts:
            part = parts.pop(0)
            return {"type": "http.request", "body": part, "more_body": bool(parts)}
        await asyncio.sleep(3600)  # the client waits for the reply

    async def send(message):
        if message["type"] == "http.response.start":
            reply["status"] = message["status"]
        else:
            reply["body"] += message.get("body", b"")

    scope = {"type": "http", "method": "POST", "path": path, "raw_path": path.encode(), "query_string": b"",
             "headers": [(b"content-type", content_type.encode())], "http_version": "1.1", "scheme": "http",
             "server": ("127.0.0.1", 5001), "client": ("127.0.0.1", 40000), "root_path": ""}
    asyncio.run(app(scope, receive, send))
    return reply["status"], json.loads(reply["body"] or b"{}")


@pytest.fixture(scope="module")
def app(logged):
    uri, run_id = logged
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", uri)
        patch.setenv(MODEL_URI_ENV, f"runs:/{run_id}/generator")
        yield create_app()


def test_raw_values_mlflow_would_convert_are_refused_naming_the_value_sent(app):
    for body, words in [
        (b'{"dataframe_records": [{"n": 2.5}]}', "row 0: n=2.5 must be a whole number such as 4."),
        (b'{"dataframe_records": [{"n": 1, "seed": 1.7}]}', "row 0: seed=1.7 must be a whole number"),
        (b'{"dataframe_records": [{"n": true}]}', "row 0: n=true must be a whole number such as 4, not a boolean."),
        (b'{"dataframe_records": [{"n": "5"}]}', 'row 0: n="5" must be a whole number such as 4, not a string.'),
        (b'{"dataframe_records": [{"n": 1e300}]}', "row 0: n=1e300 is more than the 256 images a request may ask"),
        (b'{"inputs": {"n": [1, 2.5]}}', "row 1: n=2.5 must be a whole number"),
        (b'{"instances": [{"seed": -1}]}', "row 0: seed=-1 must be at least 0."),
        (b'{"dataframe_split": {"columns": ["seed", "n"], "data": [[3, 1], [4, NaN]]}}', "row 1: n=NaN"),
        (b'{"inputs": {"seed": 9223372036854775808}}', "row 0: seed=9223372036854775808 must be below 2**63."),
        (b'{"inputs": {"seed": 1e99999999999999999999}}', "seed=1e99999999999999999999 is out of range."),
        (b'{"inputs": {"seed": 123456789012345678.0}}', "write it as an integer"),
        (b'{"inputs": {"n": [[1]]}}', "n=[1] must be a whole number such as 4, not a list."),
        (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
        (b'{"inputs": {"n": 1}, "params": {"a": [[[[[[[[[1]]]]]]]]]}}', "nested too deeply"),
        (b"\xff\xfe", "not UTF-8"),
        (b'{"inputs": {"n": 1}', "not valid JSON"),
    ]:
        status, reply = call(app, body)
        assert status == 400 and words in reply["message"], (body[:60], status, reply)
        assert reply["error_code"] == "INVALID_PARAMETER_VALUE"


def test_size_and_content_type_are_checked_before_parsing(app):
    status, reply = call(app, b" " * (MAX_BODY_BYTES + 1), chunks=40)
    assert status == 413 and "larger than" in reply["message"]
    status, reply = call(app, b"n\n2.5\n", content_type="text/csv")
    assert status == 415 and "application/json" in reply["message"]


def test_an_oversized_body_is_read_to_its_end_before_the_413():
    # Answering while the client still sends made it fail with a broken pipe, not the 413.
    parts = [b" " * (MAX_BODY_BYTES // 8)] * 12
    left_when_answered = []

    async def receive():
        return {"type": "http.request", "body": parts.pop(), "more_body": bool(parts)}

    async def send(message):
        if message["type"] == "http.response.start":
            left_when_answered.append(len(parts))
            assert message["status"] == 413

    async def never(scope, receive, send):
        raise AssertionError("an oversized request reached the model")

    scope = {"type": "http", "method": "POST", "path": "/invocations", "headers": []}
    asyncio.run(RequestCheck(never)(scope, receive, send))
    assert left_when_answered == [0]


def test_whole_numbers_in_every_layout_reach_the_model(app):
    for body in [b'{"dataframe_records": [{"seed": 3, "n": 2}]}', b'{"inputs": {"seed": [3], "n": [2]}}',
                 b'{"dataframe_split": {"columns": ["seed", "n"], "data": [[3, 2]]}}',
                 b'{"instances": [{"seed": 3, "n": 2.0}]}']:
        status, reply = call(app, body, chunks=3)
        assert status == 200 and [row["seed"] for row in reply["predictions"]] == [3, 4], body
    status, reply = call(app, b'{"dataframe_records": [{"n": 2}]}', content_type="application/json; charset=utf-8")
    assert status == 200 and len(reply["predictions"]) == 2


def test_other_endpoints_pass_through(app):
    async def get(path):
        reply = {}

        async def receive():
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message):
            reply.setdefault("status", message.get("status"))

        await app({"type": "http", "method": "GET", "path": path, "raw_path": path.encode(), "query_string": b"",
                   "headers": [], "http_version": "1.1", "scheme": "http", "server": ("127.0.0.1", 5001),
                   "client": ("127.0.0.1", 40000), "root_path": ""}, receive, send)
        return reply["status"]

    assert asyncio.run(get("/ping")) == 200


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.sampled_from(["n", "seed", "x", "columns",
                                                                                      "data", "format"]),
                                                                     children, max_size=3),
    max_leaves=12,
)
REQUESTS = st.one_of(
    JSON,
    st.fixed_dictionaries({}, optional={"dataframe_records": JSON, "inputs": JSON, "instances": JSON,
                                        "dataframe_split": JSON, "params": JSON}),
    st.builds(lambda rows: {"dataframe_records": rows},
              st.lists(st.dictionaries(st.sampled_from(["n", "seed"]), JSON, max_size=2), max_size=3)),
)


@settings(max_examples=150, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(request=REQUESTS)
def test_any_json_request_gets_an_answer_never_a_server_error(app, request):
    body = json.dumps(request, allow_nan=True).encode()
    status, reply = call(app, body)
    assert status in (200, 400), (request, status, reply)
    if status == 400:
        assert reply.get("message"), reply


def test_check_request_alone_needs_no_model():
    assert check_request(b'{"inputs": {"n": 4}}', "application/json") is None
    assert check_request(b'{"inputs": {"n": 4}}', "application/json", max_images=3)[0] == 400
    assert check_request(b"{}", None)[0] == 415
