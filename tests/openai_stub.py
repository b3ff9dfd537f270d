"""A loopback OpenAI-compatible chat server for tests: a few lines of http.server on 127.0.0.1.

`serve(reply)` answers every POST with `reply(body) -> (status, bytes)`; `serve(hang=True)`
accepts each request and never answers (until the test ends). The server binds port 0 on
127.0.0.1 only and is shut down when the `with` block exits.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

Reply = Callable[[dict], tuple[int, bytes]]


def chat_reply(content: object = "<answer>4</answer>", usage: object = None, **choice: object) -> bytes:
    """A chat completion reply body; any field can be given a wrong shape on purpose."""
    data = {"choices": [{"message": {"role": "assistant", "content": content}, "finish_reason": "stop", **choice}]}
    data["usage"] = usage if usage is not None else {"prompt_tokens": 3, "completion_tokens": 2}
    return json.dumps(data).encode()


@contextlib.contextmanager
def serve(reply: Reply | None = None, hang: bool = False) -> Iterator[str]:
    """Yields the base URL (`http://127.0.0.1:PORT/v1`) of a server answering with `reply`."""
    stop = threading.Event()
    seen: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            body = json.loads(self.rfile.read(int(self.headers.get("content-length", 0))) or b"{}")
            seen.append(body)
            if hang:
                stop.wait(60)
                return
            status, payload = reply(body) if reply else (200, chat_reply())
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    finally:
        stop.set()
        server.shutdown()
        server.server_close()
        thread.join(5)
