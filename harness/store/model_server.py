"""``python -m harness serve``: MLflow's scoring app on a logged generator, behind a request check.

The model itself (what answers ``/invocations``) is ``harness/store/generator_model.py``.
MLflow's app converts a request's values to the signature's types before the
model sees them: ``n=2.5`` arrives as 2, ``"5"`` as 5, ``true`` as 1 and
``1e300`` overflows to a negative number; a JSON array nested 100,000 deep
ends in a RecursionError (HTTP 500). So the server here is MLflow's own app
(``mlflow.pyfunc.scoring_server``) wrapped in ``RequestCheck``, an ASGI
middleware that reads the raw request first: its size, its nesting depth and
the JSON type of every ``n`` and ``seed``. Run it by hand with
``python -m harness.store.model_server MODEL_URI [--host --port --workers --timeout]``;
``mlflow models serve`` serves the same model without this check.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
from decimal import Decimal, InvalidOperation

import uvicorn
from mlflow.pyfunc import scoring_server

from harness.errors import ConfigError
from harness.store import generator_model as serving

DEFAULT_HOST = "127.0.0.1"
MAX_BODY_BYTES = 1 << 20  # a request for 256 images takes a few dozen bytes
DRAIN_BYTES = 64 << 20  # an oversized body is read (and dropped) up to this much before the 413, so the
# client can finish sending and read the reply; closing on a half-sent body resets the connection.
MAX_DEPTH = 8  # {"dataframe_split": {"data": [[...]]}} is 3 levels deep
MODEL_URI_ENV = "HARNESS_SERVE_MODEL_URI"  # how each server worker learns which model to load
FLOAT_EXACT = 2**53  # above this a JSON float no longer names one whole number exactly


def serve_command(model_uri: str, host: str = DEFAULT_HOST, port: int = 5001, workers: int = 1,
                  timeout: int = 60) -> list[str]:
    """The command line that serves ``model_uri`` from this environment (``python -m harness.store.model_server``)."""
    return [sys.executable, "-m", "harness.store.model_server", model_uri, "--host", host, "--port", str(port),
            "--workers", str(workers), "--timeout", str(timeout)]


def serve(model_uri: str, tracking_uri: str, host: str = DEFAULT_HOST, port: int = 5001,
          workers: int = 1, log=print) -> int:
    """Become the model server on ``model_uri`` (POSIX: exec, so signals reach it directly).

    Checks the port first so that a busy port is one clear line, not a uvicorn
    traceback. Returns the server's exit code where exec is not available.
    """
    if not 0 < port < 65536:
        raise ConfigError(f"--port {port} must be between 1 and 65535.")
    if workers < 1:
        raise ConfigError(f"--workers {workers} must be at least 1.")
    try:
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
            probe.bind((host, port))
    except OSError as exc:
        raise ConfigError(f"cannot listen on {host}:{port} ({exc.strerror}); pass another --port "
                          "or --host.") from None
    if host not in ("127.0.0.1", "localhost", "::1"):
        log(f"warning: binding {host}: anyone who can reach this machine can call the model "
            "(there is no authentication).")
    env = {"MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false", **os.environ,
           "MLFLOW_TRACKING_URI": tracking_uri}
    command = serve_command(model_uri, host, port, workers)
    log(f"serving {model_uri} at http://{host}:{port}/invocations (Ctrl-C stops it)")
    if os.name != "posix":
        try:
            return subprocess.run(command, env=env).returncode
        except KeyboardInterrupt:
            return 130
    sys.stdout.flush()  # exec discards what is still buffered
    os.execve(command[0], command, env)  # replaces this process: never returns


# --- the app: MLflow's scoring app behind RequestCheck ---------------------------------
def create_app():
    """The ASGI app for the model named by ``$HARNESS_SERVE_MODEL_URI`` (uvicorn's factory)."""
    model = scoring_server.load_model_with_mlflow_config(os.environ[MODEL_URI_ENV])
    config = getattr(model, "model_config", None) or {}
    return RequestCheck(scoring_server.init(model),
                        max_images=int(config.get("max_images_per_request", serving.MAX_IMAGES)))


class RequestCheck:
    """ASGI middleware: answer 413/415/400 for a request to ``/invocations`` that is too large,
    not JSON, nested too deeply or has an ``n``/``seed`` that is not a whole number in range;
    pass every other request, body unchanged, to ``app``."""

    def __init__(self, app, max_images: int = serving.MAX_IMAGES, max_body: int = MAX_BODY_BYTES):
        self.app, self.max_images, self.max_body = app, max_images, max_body

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"].rstrip("/") != "/invocations":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > DRAIN_BYTES:  # not worth reading: refuse at once
            await _reply(send, 413, self._too_large())
            return
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                await _drain(receive, message, size)
                await _reply(send, 413, self._too_large())
                return
            chunks.append(chunk)
            if not message.get("more_body"):
                break
        body = b"".join(chunks)
        problem = check_request(body, headers.get("content-type"), self.max_images)
        if problem is not None:
            await _reply(send, *problem)
            return
        delivered = False

        async def replay():
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    def _too_large(self) -> str:
        return (f"the request is larger than {self.max_body} bytes; ask for at most {self.max_images} "
                "images per request, each row as {\"seed\": S, \"n\": N}.")


async def _drain(receive, message: dict, size: int) -> None:
    """Read and drop the rest of a request body, at most DRAIN_BYTES in all."""
    while message.get("more_body") and size <= DRAIN_BYTES:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        size += len(message.get("body", b""))


async def _reply(send, status: int, message: str) -> None:
    # The same JSON shape as MLflow's own error replies.
    code = {400: "INVALID_PARAMETER_VALUE", 413: "RESOURCE_EXHAUSTED", 415: "BAD_REQUEST"}[status]
    body = json.dumps({"error_code": code, "message": message}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


class _Number:
    """A JSON number that is not a plain integer, kept as sent (``2.5``, ``1e300``, ``NaN``)."""

    def __init__(self, text: str):
        self.text = text
        try:
            self.value: Decimal | None = Decimal(text)
        except InvalidOperation:  # an exponent beyond what Decimal holds (1e99999999999999999999)
            self.value = None


def check_request(body: bytes, content_type: str | None, max_images: int = serving.MAX_IMAGES
                  ) -> tuple[int, str] | None:
    """``(HTTP status, message)`` for a raw ``/invocations`` request that must be refused, else None.

    Checks what MLflow's parsing would otherwise hide or crash on: the content
    type, the UTF-8 JSON itself, its nesting depth, and every ``n``/``seed``
    (a whole number: no fraction, string or boolean; ``n`` from 1 to
    ``max_images``, ``seed`` from 0 to 2**63 - 1). The rest (unknown keys,
    the request's layout, the total count) is left to MLflow and the model.
    """
    mime = (content_type or "").split(";")[0].strip().lower()
    if mime != "application/json":
        return 415, (f"send JSON with Content-Type: application/json (got {content_type or 'none'!r}), e.g. "
                     "{\"dataframe_records\": [{\"seed\": 3, \"n\": 4}]}.")
    try:
        request = json.loads(body.decode("utf-8"), parse_float=_Number, parse_constant=_Number)
    except RecursionError:
        return 400, f"the request is nested too deeply; at most {MAX_DEPTH} levels of [ ] and {{ }}."
    except UnicodeDecodeError:
        return 400, "the request is not UTF-8 text; send UTF-8 JSON."
    except ValueError as exc:  # includes integers of more than 4300 digits
        return 400, f"the request is not valid JSON ({str(exc)[:120]})."
    if _depth(request) > MAX_DEPTH:
        return 400, f"the request is nested too deeply; at most {MAX_DEPTH} levels of [ ] and {{ }}."
    for where, key, value in _values(request):
        problem = _check_value(f"{where}: {key}", key, value, max_images)
        if problem:
            return 400, problem
    return None


def _depth(value) -> int:
    """How deeply lists and objects nest in ``value`` (a scalar is 0), without recursion."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, (list, dict)):
            deepest = max(deepest, level)
            if level > MAX_DEPTH:
                return level
            stack.extend((child, level + 1) for child in (item.values() if isinstance(item, dict) else item))
    return deepest


KEYS = ("n", "seed")


def _values(request):
    """``(row, key, value)`` for every ``n``/``seed`` in MLflow's JSON layouts (records, split, inputs)."""
    if not isinstance(request, dict):
        return
    records = request.get("dataframe_records")
    for name in ("inputs", "instances"):
        if isinstance(request.get(name), list):
            records = request[name]
        elif isinstance(request.get(name), dict):
            for key in KEYS:
                if key in request[name]:
                    column = request[name][key]
                    for i, value in enumerate(column if isinstance(column, list) else [column]):
                        yield f"row {i}", key, value
    if isinstance(records, list):
        for i, row in enumerate(records):
            if isinstance(row, dict):
                for key in KEYS:
                    if key in row:
                        yield f"row {i}", key, row[key]
    split = request.get("dataframe_split")
    if isinstance(split, dict) and isinstance(split.get("columns"), list) and isinstance(split.get("data"), list):
        for j, column in enumerate(split["columns"]):
            if column in KEYS:
                for i, row in enumerate(split["data"]):
                    if isinstance(row, list) and j < len(row):
                        yield f"row {i}", column, row[j]


def _check_value(name: str, key: str, value, max_images: int) -> str | None:
    """Why ``value`` cannot be ``key`` (``n`` or ``seed``), naming it as sent; None if it can."""
    if value is None:  # missing, as MLflow reads it
        return None
    if isinstance(value, bool) or isinstance(value, (str, list, dict)):
        return f"{name}={_render(value)[:40]} must be a whole number such as 4, not a {_json_type(value)}."
    if isinstance(value, _Number):
        number, sent = value.value, value.text
        if number is None:
            return f"{name}={sent} is out of range."
        if not number.is_finite() or number != number.to_integral_value():
            return f"{name}={sent} must be a whole number such as 4."
    else:
        number, sent = Decimal(value), str(value)
    low, high = (1, max_images) if key == "n" else (0, 2**63 - 1)
    if number < low:
        return f"{name}={sent} must be at least {low}."
    if number > high:
        if key == "n":
            return f"{name}={sent} is more than the {max_images} images a request may ask for; split it up."
        return f"{name}={sent} must be below 2**63."
    if isinstance(value, _Number) and abs(number) > FLOAT_EXACT:
        return f"{name}={sent} is too large to send as a decimal number; write it as an integer."
    return None


def _render(value) -> str:
    """``value`` written back as JSON, numbers as they were sent (depth is bounded by MAX_DEPTH)."""
    if isinstance(value, _Number):
        return value.text
    if isinstance(value, list):
        return "[" + ", ".join(_render(v) for v in value[:4]) + (", ...]" if len(value) > 4 else "]")
    if isinstance(value, dict):
        items = [f"{json.dumps(k)}: {_render(v)}" for k, v in list(value.items())[:4]]
        return "{" + ", ".join(items) + (", ...}" if len(value) > 4 else "}")
    return json.dumps(value)


def _json_type(value) -> str:
    return {bool: "boolean", str: "string", list: "list", dict: "object"}[type(value)]


def main(argv: list[str] | None = None) -> int:
    """``python -m harness.store.model_server MODEL_URI``: run the app under uvicorn (MLflow's own server)."""
    parser = argparse.ArgumentParser(prog="python -m harness.store.model_server", description=__doc__.splitlines()[0])
    parser.add_argument("model_uri", help="runs:/RUN_ID/generator, models:/NAME/VERSION or a local folder")
    parser.add_argument("--host", default=DEFAULT_HOST)
    parser.add_argument("--port", type=int, default=5001)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--timeout", type=int, default=60, help="seconds a request may take")
    args = parser.parse_args(argv)
    os.environ[MODEL_URI_ENV] = args.model_uri
    # Read by MLflow's app in each worker: the same request timeout as `mlflow models serve --timeout`.
    os.environ["MLFLOW_SCORING_SERVER_REQUEST_TIMEOUT"] = str(args.timeout)
    uvicorn.run("harness.store.model_server:create_app", factory=True, host=args.host, port=args.port, workers=args.workers)
    return 0


if __name__ == "__main__":
    sys.exit(main())
