"""A fake of the Brave Search API (`GET /res/v1/web/search`) for the conformance suite, in its
real wire format, so oma's web_search cannot tell it from the real service.

`conformance/run.sh` picks the port and starts `oma serve` with OMA_WEB_SEARCH_URL pointing
here; the pytest process serves it (fixture `fake_search`), so each test scripts the results.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit


def brave_result(title: str, url: str, description: str, page_age: str | None = None) -> dict:
    """One entry of `web.results[]` as Brave sends it."""
    r = {
        "type": "search_result",
        "title": title,
        "url": url,
        "is_source_local": False,
        "is_source_both": False,
        "description": description,
        "language": "en",
        "family_friendly": True,
        "profile": {"name": title, "url": url, "long_name": url, "img": ""},
        "meta_url": {"scheme": "https", "netloc": urlsplit(url).netloc, "hostname": urlsplit(url).hostname, "path": ""},
    }
    if page_age is not None:
        r["page_age"] = page_age
        r["age"] = page_age[:10]
    return r


class FakeSearch:
    def __init__(self, port: int):
        self.results: list[dict] = []
        # An HTTP error instead of results: (status, body).
        self.error: tuple[int, str] | None = None
        self.requests: list[dict] = []
        self.lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # quiet
                pass

            def do_GET(self):
                parts = urlsplit(self.path)
                with fake.lock:
                    fake.requests.append(
                        {"path": parts.path, "query": parse_qs(parts.query), "headers": dict(self.headers)}
                    )
                    results = list(fake.results)
                    error = fake.error
                if parts.path != "/res/v1/web/search":
                    status, payload = 404, {"error": "not found"}
                elif error:
                    status, payload = error[0], json.loads(error[1])
                else:
                    q = parse_qs(parts.query).get("q", [""])[0]
                    status, payload = 200, {
                        "type": "search",
                        "query": {"original": q, "show_strict_warning": False, "is_navigational": False},
                        "mixed": {"type": "mixed", "main": [{"type": "web", "index": i, "all": False} for i in range(len(results))]},
                        "web": {"type": "search", "results": results, "family_friendly": True},
                    }
                body = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def reset(self) -> None:
        with self.lock:
            self.results = []
            self.error = None
            self.requests = []

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
