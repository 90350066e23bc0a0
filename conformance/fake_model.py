"""A scriptable fake of the Anthropic Messages API (and of an OpenAI-compatible chat
completions endpoint) for the conformance suite. It speaks the real streaming wire formats, so
oma's providers cannot tell it from the real service.

`conformance/run.sh` picks the port and starts `oma serve` with ANTHROPIC_BASE_URL pointing
here; the pytest process serves it (fixture `fake_model`), so each test scripts the replies
the model gives.
"""

from __future__ import annotations

import json
import queue
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Reply:
    """One model response. `text` comes first, then `tool_uses` (name, input) in order."""

    text: str = ""
    tool_uses: list[tuple[str, dict]] = field(default_factory=list)
    # An HTTP error instead of a stream: (status, error type, retry-after seconds or None).
    error: tuple[int, str, float | None] | None = None
    # Seconds to wait between streamed chunks (slow streams, for interrupts).
    chunk_delay: float = 0.0
    # Pause the stream after the first text chunk until this event is set.
    gate: threading.Event | None = None
    # Set when the stream reached the gate (tests wait on it).
    at_gate: threading.Event | None = None
    # Reported usage instead of the estimate: {"input_tokens": n, "output_tokens": n, ...}.
    usage: dict | None = None
    # The stop reason instead of `tool_use`/`end_turn`, and its `stop_details` (a refusal's).
    stop_reason: str | None = None
    stop_details: dict | None = None


class FakeModel:
    def __init__(self, port: int):
        self.replies: queue.Queue[Reply] = queue.Queue()
        self.requests: list[dict] = []
        self.lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # quiet
                pass

            def do_POST(self):
                length = int(self.headers.get("content-length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                with fake.lock:
                    fake.requests.append({"path": self.path, "body": body, "headers": dict(self.headers)})
                try:
                    reply = fake.replies.get_nowait()
                except queue.Empty:
                    reply = Reply(text="ok")
                if reply.error:
                    status, etype, retry_after = reply.error
                    payload = json.dumps({"type": "error", "error": {"type": etype, "message": f"fake {etype}"}}).encode()
                    self.send_response(status)
                    self.send_header("content-type", "application/json")
                    self.send_header("content-length", str(len(payload)))
                    if retry_after is not None:
                        self.send_header("retry-after", str(retry_after))
                    self.end_headers()
                    self.wfile.write(payload)
                    return
                if self.path.endswith("/chat/completions"):
                    fake._stream_openai(self, body, reply)
                else:
                    fake._stream_anthropic(self, body, reply)

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def push(self, *replies: Reply) -> None:
        for r in replies:
            self.replies.put(r)

    def reset(self) -> None:
        while not self.replies.empty():
            self.replies.get_nowait()
        with self.lock:
            self.requests.clear()

    def stop(self) -> None:
        self.server.shutdown()

    # --- wire formats -------------------------------------------------------------------------

    @staticmethod
    def _start(handler) -> None:
        handler.send_response(200)
        handler.send_header("content-type", "text/event-stream")
        handler.send_header("cache-control", "no-cache")
        handler.send_header("connection", "close")
        handler.end_headers()

    @staticmethod
    def _sse(handler, event: str, data: dict) -> None:
        handler.wfile.write(f"event: {event}\ndata: {json.dumps(data)}\n\n".encode())
        handler.wfile.flush()

    def _stream_anthropic(self, h, body: dict, r: Reply) -> None:
        self._start(h)
        input_tokens = max(1, len(json.dumps(body.get("messages", []))) // 4)
        self._sse(h, "message_start", {"type": "message_start", "message": {
            "id": "msg_fake", "type": "message", "role": "assistant", "model": body.get("model", "fake"),
            "content": [], "stop_reason": None, "stop_sequence": None,
            "usage": {"input_tokens": input_tokens, "output_tokens": 1,
                      "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0,
                      **{k: v for k, v in (r.usage or {}).items() if k != "output_tokens"}}}})
        index = 0
        output_tokens = 1
        if r.text:
            self._sse(h, "content_block_start", {"type": "content_block_start", "index": index,
                                                 "content_block": {"type": "text", "text": ""}})
            chunks = [r.text[i:i + 8] for i in range(0, len(r.text), 8)]
            for n, chunk in enumerate(chunks):
                self._sse(h, "content_block_delta", {"type": "content_block_delta", "index": index,
                                                     "delta": {"type": "text_delta", "text": chunk}})
                if n == 0 and r.gate is not None:
                    if r.at_gate is not None:
                        r.at_gate.set()
                    r.gate.wait(timeout=60)
                if r.chunk_delay:
                    time.sleep(r.chunk_delay)
            self._sse(h, "content_block_stop", {"type": "content_block_stop", "index": index})
            output_tokens += len(r.text) // 4
            index += 1
        for n, (name, tool_input) in enumerate(r.tool_uses):
            self._sse(h, "content_block_start", {"type": "content_block_start", "index": index, "content_block": {
                "type": "tool_use", "id": f"toolu_fake_{index}_{n}", "name": name, "input": {}}})
            raw = json.dumps(tool_input)
            for i in range(0, len(raw), 10):
                self._sse(h, "content_block_delta", {"type": "content_block_delta", "index": index,
                                                     "delta": {"type": "input_json_delta", "partial_json": raw[i:i + 10]}})
            self._sse(h, "content_block_stop", {"type": "content_block_stop", "index": index})
            output_tokens += 10
            index += 1
        if r.usage and "output_tokens" in r.usage:
            output_tokens = r.usage["output_tokens"]
        stop = r.stop_reason or ("tool_use" if r.tool_uses else "end_turn")
        delta = {"stop_reason": stop, "stop_sequence": None}
        if r.stop_details is not None:
            delta["stop_details"] = r.stop_details
        self._sse(h, "message_delta", {"type": "message_delta", "delta": delta,
                                       "usage": {"output_tokens": output_tokens}})
        self._sse(h, "message_stop", {"type": "message_stop"})

    def _stream_openai(self, h, body: dict, r: Reply) -> None:
        self._start(h)

        def chunk(delta: dict, finish: str | None = None, usage: dict | None = None) -> None:
            payload = {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": int(time.time()),
                       "model": body.get("model", "fake"),
                       "choices": [] if usage else [{"index": 0, "delta": delta, "finish_reason": finish}]}
            if usage:
                payload["usage"] = usage
            h.wfile.write(f"data: {json.dumps(payload)}\n\n".encode())
            h.wfile.flush()

        chunk({"role": "assistant", "content": ""})
        for i in range(0, len(r.text), 8):
            chunk({"content": r.text[i:i + 8]})
        for n, (name, tool_input) in enumerate(r.tool_uses):
            raw = json.dumps(tool_input)
            chunk({"tool_calls": [{"index": n, "id": f"call_{n}", "type": "function",
                                   "function": {"name": name, "arguments": ""}}]})
            chunk({"tool_calls": [{"index": n, "function": {"arguments": raw}}]})
        chunk({}, "tool_calls" if r.tool_uses else "stop")
        prompt = max(1, len(json.dumps(body.get("messages", []))) // 4)
        chunk({}, usage={"prompt_tokens": prompt, "completion_tokens": 5, "total_tokens": prompt + 5})
        h.wfile.write(b"data: [DONE]\n\n")
        h.wfile.flush()
