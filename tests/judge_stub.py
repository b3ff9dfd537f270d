"""A loopback OpenAI-compatible judge: answers GOOD (logprob mode) for a chat that contains `good_if`,
BAD otherwise, and records every chat it was asked. 127.0.0.1 only, port chosen by the OS, stopped by
the test (a daemon thread, so a failing test never leaves it behind)."""

from __future__ import annotations

import json
import threading
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@contextmanager
def judge_server(good_if: str):
    asked: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - http.server's name
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            text = "\n".join(str(m.get("content", "")) for m in body["messages"])
            asked.append(text)
            first, second = ("GOOD", "BAD") if good_if in text else ("BAD", "GOOD")
            top = [{"token": first, "logprob": -0.1}, {"token": second, "logprob": -2.5}]
            reply = json.dumps({"choices": [{"logprobs": {"content": [{"top_logprobs": top}]}}]}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

        def log_message(self, *args):  # keep the test output clean
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/v1", asked
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
