"""A small OpenAI- and Anthropic-compatible HTTP server for tests (stdlib only).

    with FakeOpenAIServer(responder=lambda req: "hello", faults=["429", None, "500"]) as srv:
        client = openai.OpenAI(base_url=srv.base_url, api_key="x")   # .../v1
        anthropic.Anthropic(base_url=srv.root_url, api_key="x")      # posts to /v1/messages

Endpoints: POST /v1/chat/completions, POST /v1/messages (Anthropic), POST /v1/embeddings, and
the provider batch APIs: OpenAI (POST /v1/files purpose=batch, POST /v1/batches,
GET /v1/batches/{id}, GET /v1/files/{id}/content) and Anthropic Message Batches
(POST /v1/messages/batches, GET /v1/messages/batches/{id}, GET .../{id}/results).

- Every request is recorded (``srv.requests``: path, headers, parsed JSON body, fault).
- Answers come from ``responses`` (a dict: last user text -> answer) or ``responder``
  (callable: request JSON -> str, or a dict/list that is JSON-encoded). When the request
  carries ``tools``, the answer is sent as a tool call whose arguments are that JSON.
- Faults: ``faults`` is a sequence consumed one per request (``None`` = answer normally),
  or a callable ``request_json -> kind | None``; ``fault_probability`` with ``fault_kinds``
  adds seeded random faults. Kinds: "429", "429-retry-after", "500", "502", "503", "529",
  "400", "401" (echoes the key it got, as real providers partly do), "reset" (TCP RST), "slow" (sleep ``slow_s`` before answering),
  "truncated" (body cut short, connection closed), "nonjson" (200 with a non-JSON body),
  "badjson" (200, valid JSON whose tool arguments fail the schema: ``{}``).
- ``latency_s`` delays every answer; ``max_in_flight`` records peak concurrency.
- Batches: every line is answered like a live request (same responder, tool calls), but
  batch traffic never consumes ``faults``. A batch reports in-progress for its first
  ``batch_polls`` status requests, then ends (OpenAI status ``batch_status``, default
  "completed"). ``batch_line_fault`` (callable: line body -> "500"/"400"/... or None) turns
  lines into errored results (OpenAI error file / Anthropic ``errored``). ``srv.batch_lines``
  holds every line's body as submitted; ``srv.count_batches()`` counts batch creations.
"""

from __future__ import annotations

import email.parser
import email.policy
import hashlib
import itertools
import json
import random
import socket
import struct
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from pydantic import BaseModel

Responder = Callable[[dict[str, Any]], Any]
FaultSpec = Sequence[str | None] | Callable[[dict[str, Any]], str | None] | None

FAULT_KINDS = (
    "429",
    "429-retry-after",
    "500",
    "502",
    "503",
    "529",
    "400",
    "401",
    "reset",
    "slow",
    "truncated",
    "nonjson",
    "badjson",
)


@dataclass
class RecordedRequest:
    path: str
    headers: dict[str, str]  # names lower-cased
    body: dict[str, Any]
    fault: str | None = None
    t: float = field(default_factory=time.monotonic)
    method: str = "POST"


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(p.get("text", "") for p in content if isinstance(p, dict) and "text" in p)
    return ""


def last_user_text(body: dict[str, Any]) -> str:
    """Text of the last user message (OpenAI or Anthropic request), or the prompt."""
    for m in reversed(body.get("messages") or []):
        if m.get("role") == "user":
            return _text_of(m.get("content"))
    return str(body.get("prompt", ""))


class Answer(BaseModel):
    """The structured output the shared responder returns."""

    answer: str
    confidence: int


def structured_responder(body: dict[str, Any]) -> object:
    """Tool calls get a valid :class:`Answer`; plain chat gets an echo of the user text."""
    text = last_user_text(body)
    if body.get("tools"):
        return {"answer": f"A:{text}", "confidence": 7}
    return f"echo:{text}"


def _ntok(text: str) -> int:
    return max(1, len(text.split()))


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Small responses otherwise wait for the client's delayed ACK (~40 ms each).
    disable_nagle_algorithm = True
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    # -- plumbing ---------------------------------------------------------------------------
    def _send(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)
        self.wfile.flush()

    def _error(self, status: int, kind: str, anthropic: bool, headers=None) -> None:
        msg = f"fake {kind} error"
        if status == 401:  # like real providers, echo (part of) the key that was sent
            sent = self.headers.get("Authorization") or self.headers.get("x-api-key") or ""
            msg = f"Incorrect API key provided: {sent.removeprefix('Bearer ')}"
        if anthropic:
            etype = {429: "rate_limit_error", 529: "overloaded_error"}.get(status, "api_error")
            body = {"type": "error", "error": {"type": etype, "message": msg}}
        else:
            body = {"error": {"message": msg, "type": "fake_error", "code": str(status)}}
        self._send(status, body, headers)

    def _reset(self) -> None:
        self.close_connection = True
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
        except OSError:
            pass

    # -- main --------------------------------------------------------------------------------
    def do_POST(self) -> None:  # noqa: N802
        srv = self.server.owner
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            body = {"_raw": raw.decode("utf-8", "replace")}
        path = self.path.split("?", 1)[0]
        headers = {k.lower(): v for k, v in self.headers.items()}
        if path.endswith(("/files", "/batches")):  # batch traffic never takes a fault
            srv._enter(RecordedRequest(path=path, headers=headers, body=body))
            try:
                self._batch_post(path, raw, body)
            except (BrokenPipeError, ConnectionResetError, OSError):
                self.close_connection = True
            finally:
                srv._leave()
            return
        fault = srv._next_fault(body)
        rec = RecordedRequest(path=path, headers=headers, body=body, fault=fault)
        srv._enter(rec)
        try:
            self._dispatch(path, body, fault)
        except (BrokenPipeError, ConnectionResetError, OSError):
            self.close_connection = True
        finally:
            srv._leave()

    def _dispatch(self, path: str, body: dict[str, Any], fault: str | None) -> None:
        srv = self.server.owner
        anthropic = path.endswith("/messages")
        if srv.latency_s:
            time.sleep(srv.latency_s)
        if fault == "slow":
            time.sleep(srv.slow_s)
            fault = None
        if fault == "reset":
            self._reset()
            return
        if fault in ("429", "429-retry-after", "500", "502", "503", "529", "400", "401"):
            status = int(fault[:3])
            headers = {"Retry-After": srv.retry_after} if fault == "429-retry-after" else None
            self._error(status, fault, anthropic, headers)
            return
        if fault == "nonjson":
            self._send(200, b"<html>upstream proxy error</html>")
            return

        if path.endswith("/embeddings"):
            payload = self._embeddings(body)
        elif path.endswith("/chat/completions"):
            payload = self._chat(body, bad=fault == "badjson")
        elif anthropic:
            payload = self._messages(body, bad=fault == "badjson")
        else:
            self._send(404, {"error": {"message": f"no route {path}"}})
            return

        if fault == "truncated":
            data = json.dumps(payload).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data[: len(data) // 2])
            self.wfile.flush()
            self._reset()
            return
        self._send(200, payload)

    # -- batch APIs ----------------------------------------------------------------------------
    def do_GET(self) -> None:  # noqa: N802
        srv = self.server.owner
        path = self.path.split("?", 1)[0]
        headers = {k.lower(): v for k, v in self.headers.items()}
        srv._enter(RecordedRequest(path=path, headers=headers, body={}, method="GET"))
        try:
            self._batch_get(path)
        except (BrokenPipeError, ConnectionResetError, OSError):
            self.close_connection = True
        finally:
            srv._leave()

    def _send_bytes(self, data: bytes, content_type: str) -> None:
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        self.wfile.flush()

    def _batch_post(self, path: str, raw: bytes, body: dict[str, Any]) -> None:
        srv = self.server.owner
        if path == "/v1/files":
            ctype = self.headers.get("Content-Type", "")
            msg = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
                f"Content-Type: {ctype}\r\n\r\n".encode() + raw
            )
            fields: dict[str, Any] = {}
            for part in msg.iter_parts():
                name = part.get_param("name", header="content-disposition")
                fields[name] = (part.get_filename(), part.get_payload(decode=True))
            filename, content = fields["file"]
            purpose = fields.get("purpose", (None, b""))[1].decode()
            self._send(200, srv._new_file(content, filename or "upload.jsonl", purpose))
        elif path == "/v1/batches":
            self._send(200, srv._create_openai_batch(body, self._chat))
        elif path == "/v1/messages/batches":
            self._send(200, srv._create_anthropic_batch(body, self._messages))
        else:
            self._send(404, {"error": {"message": f"no route {path}"}})

    def _batch_get(self, path: str) -> None:
        srv = self.server.owner
        parts = path.strip("/").split("/")
        with srv._lock:
            if parts[:2] == ["v1", "batches"] and len(parts) == 3 and parts[2] in srv.batches:
                payload: Any = srv._poll_openai(parts[2])
            elif parts[:2] == ["v1", "files"] and len(parts) == 4 and parts[3] == "content":
                f = srv.files.get(parts[2])
                if f is None:
                    payload = None
                else:
                    data = f["content"]
                    payload = ("bytes", data)
            elif parts[:3] == ["v1", "messages", "batches"] and len(parts) >= 4:
                bid = parts[3]
                if bid not in srv.msg_batches:
                    payload = None
                elif len(parts) == 5 and parts[4] == "results":
                    b = srv.msg_batches[bid]
                    if b["public"]["processing_status"] != "ended":
                        payload = None
                    else:
                        lines = [json.dumps(x) for x in b["results"]]
                        payload = ("bytes", ("\n".join(lines) + "\n").encode())
                else:
                    payload = srv._poll_anthropic(bid)
            else:
                payload = None
        if payload is None:
            self._send(404, {"error": {"message": f"no route {path}", "type": "not_found"}})
        elif isinstance(payload, tuple):
            self._send_bytes(payload[1], "application/octet-stream")
        else:
            self._send(200, payload)

    # -- answers -----------------------------------------------------------------------------
    def _answer(self, body: dict[str, Any]) -> str:
        srv = self.server.owner
        key = last_user_text(body)
        if srv.responses is not None and key in srv.responses:
            out = srv.responses[key]
        elif srv.responder is not None:
            out = srv.responder(body)
        else:
            out = "ok"
        return out if isinstance(out, str) else json.dumps(out)

    def _chat(self, body: dict[str, Any], bad: bool) -> dict[str, Any]:
        answer = "{}" if bad else self._answer(body)
        prompt = " ".join(_text_of(m.get("content")) for m in body.get("messages") or [])
        tools = body.get("tools")
        if tools:
            choice = body.get("tool_choice")
            if isinstance(choice, dict) and "function" in choice:
                name = choice["function"]["name"]
            else:
                name = tools[0]["function"]["name"]
            message = {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_fake_1",
                        "type": "function",
                        "function": {"name": name, "arguments": answer},
                    }
                ],
            }
            finish = "tool_calls"
        else:
            message = {"role": "assistant", "content": answer}
            finish = "stop"
        return {
            "id": "chatcmpl-fake",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model", "fake"),
            "choices": [{"index": 0, "message": message, "finish_reason": finish}],
            "usage": {
                "prompt_tokens": _ntok(prompt),
                "completion_tokens": _ntok(answer),
                "total_tokens": _ntok(prompt) + _ntok(answer),
            },
        }

    def _messages(self, body: dict[str, Any], bad: bool) -> dict[str, Any]:
        answer = "{}" if bad else self._answer(body)
        prompt = " ".join(_text_of(m.get("content")) for m in body.get("messages") or [])
        tools = body.get("tools")
        if tools:
            choice = body.get("tool_choice")
            name = (
                choice["name"]
                if isinstance(choice, dict) and choice.get("name")
                else tools[0]["name"]
            )
            content = [
                {
                    "type": "tool_use",
                    "id": "toolu_fake_1",
                    "name": name,
                    "input": json.loads(answer),
                }
            ]
            stop = "tool_use"
        else:
            content = [{"type": "text", "text": answer}]
            stop = "end_turn"
        return {
            "id": "msg_fake",
            "type": "message",
            "role": "assistant",
            "model": body.get("model", "fake"),
            "content": content,
            "stop_reason": stop,
            "stop_sequence": None,
            "usage": {"input_tokens": _ntok(prompt), "output_tokens": _ntok(answer)},
        }

    def _embeddings(self, body: dict[str, Any]) -> dict[str, Any]:
        inputs = body.get("input")
        inputs = [inputs] if isinstance(inputs, str) else list(inputs or [])
        data = []
        for i, text in enumerate(inputs):
            digest = hashlib.sha256(str(text).encode()).digest()
            vec = [(b - 127.5) / 127.5 for b in digest[:8]]
            data.append({"object": "embedding", "index": i, "embedding": vec})
        return {
            "object": "list",
            "data": data,
            "model": body.get("model", "fake"),
            "usage": {"prompt_tokens": len(inputs), "total_tokens": len(inputs)},
        }


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # Many concurrent clients connect at once; the default backlog (5) resets some.
    request_queue_size = 128
    allow_reuse_address = True
    owner: FakeOpenAIServer

    def handle_error(self, request: Any, client_address: Any) -> None:  # quiet
        pass


class FakeOpenAIServer:
    """Context manager running the fake server on 127.0.0.1 (ephemeral port)."""

    def __init__(
        self,
        responder: Responder | None = None,
        *,
        responses: dict[str, Any] | None = None,
        faults: FaultSpec = None,
        fault_probability: float = 0.0,
        fault_kinds: Sequence[str] = ("500",),
        seed: int = 0,
        latency_s: float = 0.0,
        slow_s: float = 3.0,
        retry_after: str = "0.3",
        batch_polls: int = 1,
        batch_status: str = "completed",
        batch_line_fault: Callable[[dict[str, Any]], str | None] | None = None,
    ):
        for kind in list(fault_kinds) + (
            [f for f in faults if f] if isinstance(faults, (list, tuple)) else []
        ):
            if kind not in FAULT_KINDS:
                raise ValueError(f"unknown fault kind {kind!r}; known: {FAULT_KINDS}")
        self.responder = responder
        self.responses = responses
        self.faults = faults
        self.fault_probability = fault_probability
        self.fault_kinds = tuple(fault_kinds)
        self.latency_s = latency_s
        self.slow_s = slow_s
        self.retry_after = retry_after
        self.requests: list[RecordedRequest] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._rng = random.Random(seed)
        self._fault_pos = 0
        self._lock = threading.Lock()
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None
        self.batch_polls = batch_polls
        self.batch_status = batch_status
        self.batch_line_fault = batch_line_fault
        self.files: dict[str, dict[str, Any]] = {}
        self.batches: dict[str, dict[str, Any]] = {}  # OpenAI
        self.msg_batches: dict[str, dict[str, Any]] = {}  # Anthropic
        self.batch_lines: list[dict[str, Any]] = []
        self._ids = itertools.count(1)

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> FakeOpenAIServer:
        self._httpd = _Server(("127.0.0.1", 0), _Handler)
        self._httpd.owner = self
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> FakeOpenAIServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._httpd is not None, "server not started"
        return self._httpd.server_address[1]

    @property
    def root_url(self) -> str:
        """For Anthropic clients (they append /v1/messages)."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        """For OpenAI clients (they append /chat/completions)."""
        return f"{self.root_url}/v1"

    # -- batches -------------------------------------------------------------------------------
    def count_batches(self) -> int:
        """Batches created so far (OpenAI and Anthropic)."""
        with self._lock:
            return len(self.batches) + len(self.msg_batches)

    def _new_id(self, prefix: str) -> str:
        return f"{prefix}_fake{next(self._ids):04d}"

    def _new_file(self, content: bytes, filename: str, purpose: str) -> dict[str, Any]:
        with self._lock:
            fid = self._new_id("file")
            obj = {
                "id": fid,
                "object": "file",
                "bytes": len(content),
                "created_at": int(time.time()),
                "filename": filename,
                "purpose": purpose,
                "status": "processed",
            }
            self.files[fid] = {"meta": obj, "content": content}
            return obj

    def _line_fault(self, body: dict[str, Any]) -> str | None:
        return self.batch_line_fault(body) if self.batch_line_fault else None

    def _create_openai_batch(self, body: dict[str, Any], answer) -> dict[str, Any]:
        with self._lock:
            src = self.files[body["input_file_id"]]["content"].decode()
        outputs, errors = [], []
        for line in src.splitlines():
            if not line.strip():
                continue
            item = json.loads(line)
            with self._lock:
                self.batch_lines.append(item["body"])
            fault = self._line_fault(item["body"])
            rid = self._new_id("batch_req")
            if fault:
                status = int(fault[:3]) if fault[:3].isdigit() else 500
                err = {"message": f"fake {fault} error", "type": "fake_error", "code": fault}
                errors.append(
                    {
                        "id": rid,
                        "custom_id": item["custom_id"],
                        "response": {
                            "status_code": status,
                            "request_id": rid,
                            "body": {"error": err},
                        },
                        "error": None,
                    }
                )
            else:
                payload = answer(item["body"], bad=False)
                outputs.append(
                    {
                        "id": rid,
                        "custom_id": item["custom_id"],
                        "response": {"status_code": 200, "request_id": rid, "body": payload},
                        "error": None,
                    }
                )
        with self._lock:
            bid = self._new_id("batch")
            now = int(time.time())
            public = {
                "id": bid,
                "object": "batch",
                "endpoint": body["endpoint"],
                "input_file_id": body["input_file_id"],
                "completion_window": body["completion_window"],
                "status": "in_progress",
                "created_at": now,
                "output_file_id": None,
                "error_file_id": None,
                "request_counts": {
                    "total": len(outputs) + len(errors),
                    "completed": 0,
                    "failed": 0,
                },
                "metadata": body.get("metadata"),
            }
            self.batches[bid] = {"public": public, "outputs": outputs, "errors": errors, "polls": 0}
            return dict(public)

    def _poll_openai(self, bid: str) -> dict[str, Any]:  # called under the lock
        b = self.batches[bid]
        pub = b["public"]
        b["polls"] += 1
        if pub["status"] == "in_progress" and b["polls"] > self.batch_polls:
            pub["status"] = self.batch_status
            pub["completed_at"] = int(time.time())
            if self.batch_status in ("completed", "expired", "cancelled"):
                for kind, lines in (
                    ("output_file_id", b["outputs"]),
                    ("error_file_id", b["errors"]),
                ):
                    if lines:
                        data = ("\n".join(json.dumps(x) for x in lines) + "\n").encode()
                        fid = self._new_id("file")
                        self.files[fid] = {"meta": {"id": fid}, "content": data}
                        pub[kind] = fid
                pub["request_counts"] = {
                    "total": len(b["outputs"]) + len(b["errors"]),
                    "completed": len(b["outputs"]),
                    "failed": len(b["errors"]),
                }
            else:
                pub["errors"] = {"object": "list", "data": [{"message": "fake batch failure"}]}
        return dict(pub)

    def _create_anthropic_batch(self, body: dict[str, Any], answer) -> dict[str, Any]:
        results = []
        for item in body.get("requests") or []:
            params = item["params"]
            with self._lock:
                self.batch_lines.append(params)
            fault = self._line_fault(params)
            if fault:
                results.append(
                    {
                        "custom_id": item["custom_id"],
                        "result": {
                            "type": "errored",
                            "error": {
                                "type": "error",
                                "error": {"type": "api_error", "message": f"fake {fault} error"},
                            },
                        },
                    }
                )
            else:
                results.append(
                    {
                        "custom_id": item["custom_id"],
                        "result": {"type": "succeeded", "message": answer(params, bad=False)},
                    }
                )
        with self._lock:
            bid = self._new_id("msgbatch")
            now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            public = {
                "id": bid,
                "type": "message_batch",
                "processing_status": "in_progress",
                "request_counts": {
                    "processing": len(results),
                    "succeeded": 0,
                    "errored": 0,
                    "canceled": 0,
                    "expired": 0,
                },
                "created_at": now,
                "expires_at": now,
                "ended_at": None,
                "archived_at": None,
                "cancel_initiated_at": None,
                "results_url": None,
            }
            self.msg_batches[bid] = {"public": public, "results": results, "polls": 0}
            return dict(public)

    def _poll_anthropic(self, bid: str) -> dict[str, Any]:  # called under the lock
        b = self.msg_batches[bid]
        pub = b["public"]
        b["polls"] += 1
        if pub["processing_status"] == "in_progress" and b["polls"] > self.batch_polls:
            pub["processing_status"] = "ended"
            pub["ended_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            pub["results_url"] = f"{self.root_url}/v1/messages/batches/{bid}/results"
            n_ok = sum(1 for r in b["results"] if r["result"]["type"] == "succeeded")
            pub["request_counts"] = {
                "processing": 0,
                "succeeded": n_ok,
                "errored": len(b["results"]) - n_ok,
                "canceled": 0,
                "expired": 0,
            }
        return dict(pub)

    # -- bookkeeping -------------------------------------------------------------------------
    def count(self, path_suffix: str | None = None) -> int:
        with self._lock:
            return sum(
                1 for r in self.requests if path_suffix is None or r.path.endswith(path_suffix)
            )

    def reset_log(self) -> None:
        with self._lock:
            self.requests.clear()
            self.max_in_flight = 0

    def set_faults(self, faults: FaultSpec) -> None:
        with self._lock:
            self.faults = faults
            self._fault_pos = 0

    def _next_fault(self, body: dict[str, Any]) -> str | None:
        with self._lock:
            fault: str | None = None
            if callable(self.faults):
                fault = self.faults(body)
            elif self.faults is not None and self._fault_pos < len(self.faults):
                fault = self.faults[self._fault_pos]
                self._fault_pos += 1
            if fault is None and self.fault_probability > 0:
                if self._rng.random() < self.fault_probability:
                    fault = self._rng.choice(self.fault_kinds)
            return fault

    def _enter(self, rec: RecordedRequest) -> None:
        with self._lock:
            self.requests.append(rec)
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)

    def _leave(self) -> None:
        with self._lock:
            self.in_flight -= 1
