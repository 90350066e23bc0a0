"""A fake GitHub for git over HTTPS, for the conformance suite: `git http-backend` behind a
small HTTPS server that, like GitHub, takes a token as `Authorization: Basic
base64("x-access-token:<token>")` and answers 401 without a valid one.

`conformance/run.sh` makes its certificates (`python fake_git.py certs DIR`: a CA and a
`github.com` leaf signed by it), picks the port, and starts `oma serve` with
`[egress] connect_to = {"github.com" = "127.0.0.1:PORT"}` and the CA in `upstream_ca_files`.
The pytest process serves it (fixture `fake_git` in test_repositories.py).

Repositories live under `root/<owner>/<repo>` (bare). `forbidden/*` answers 403.
"""

from __future__ import annotations

import base64
import os
import ssl
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

GIT_ENV = {
    "GIT_AUTHOR_NAME": "Fake",
    "GIT_AUTHOR_EMAIL": "fake@example.com",
    "GIT_COMMITTER_NAME": "Fake",
    "GIT_COMMITTER_EMAIL": "fake@example.com",
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_CONFIG_GLOBAL": "/dev/null",
    "HOME": "/nonexistent",
}


def make_certs(out: Path) -> None:
    """A CA (`ca.pem`) and a `github.com` certificate it signs (`leaf.pem`, `leaf.key`)."""
    out.mkdir(parents=True, exist_ok=True)

    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=out, check=True, capture_output=True)

    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    run("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "3",
        "-subj", "/CN=oma conformance git CA",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    run("req", *ec, "-keyout", "leaf.key", "-out", "leaf.csr", "-subj", "/CN=github.com")
    (out / "leaf.ext").write_text(
        "subjectAltName=DNS:github.com\nbasicConstraints=CA:FALSE\n"
        "keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n"
    )
    run("x509", "-req", "-in", "leaf.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
        "-out", "leaf.pem", "-days", "3", "-extfile", "leaf.ext")


def git(*args: str, cwd: Path | None = None) -> str:
    env = {**os.environ, **GIT_ENV}
    return subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True,
                          text=True).stdout


def basic(token: str) -> str:
    return "Basic " + base64.b64encode(f"x-access-token:{token}".encode()).decode()


class FakeGit:
    def __init__(self, port: int, cert_dir: Path, root: Path):
        self.root = root
        self.tokens: set[str] = set()
        self.requests: list[dict] = []
        self.lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # quiet
                pass

            def do_GET(self):
                self.serve()

            def do_POST(self):
                self.serve()

            def body(self) -> bytes:
                if self.headers.get("transfer-encoding", "").lower() == "chunked":
                    out = b""
                    while True:
                        size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                        if size == 0:
                            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                                pass
                            return out
                        out += self.rfile.read(size)
                        self.rfile.readline()
                return self.rfile.read(int(self.headers.get("content-length") or 0))

            def answer(self, status: int, body: bytes, headers: dict | None = None) -> None:
                self.send_response(status)
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def serve(self):
                parts = urlsplit(self.path)
                data = self.body()
                auth = self.headers.get("authorization")
                with fake.lock:
                    fake.requests.append({"method": self.command, "path": parts.path,
                                          "authorization": auth, "host": self.headers.get("host")})
                    valid = {basic(t) for t in fake.tokens}
                segs = parts.path.strip("/").split("/")
                if len(segs) < 3:
                    return self.answer(404, b"Not Found\n")
                owner, repo = segs[0], segs[1].removesuffix(".git")
                rest = "/".join(segs[2:])
                if auth not in valid:
                    return self.answer(401, b"Invalid username or token.\n",
                                       {"www-authenticate": 'Basic realm="GitHub"'})
                if owner == "forbidden":
                    return self.answer(403, b"Permission denied\n")
                repo_dir = fake.root / owner / repo
                if not repo_dir.is_dir():
                    return self.answer(404, b"Repository not found.\n")
                env = {
                    **os.environ, **GIT_ENV,
                    "GIT_PROJECT_ROOT": str(fake.root),
                    "GIT_HTTP_EXPORT_ALL": "1",
                    "PATH_INFO": f"/{owner}/{repo}/{rest}",
                    "REQUEST_METHOD": self.command,
                    "QUERY_STRING": parts.query,
                    "CONTENT_TYPE": self.headers.get("content-type", ""),
                    "CONTENT_LENGTH": str(len(data)),
                    "REMOTE_USER": "x-access-token",
                    "REMOTE_ADDR": "127.0.0.1",
                    "GIT_PROTOCOL": self.headers.get("git-protocol", ""),
                    "HTTP_CONTENT_ENCODING": self.headers.get("content-encoding", ""),
                }
                p = subprocess.run(["git", "http-backend"], input=data, env=env, capture_output=True)
                head, _, body = p.stdout.partition(b"\r\n\r\n")
                if not _:
                    head, _, body = p.stdout.partition(b"\n\n")
                status, headers = 200, {}
                for line in head.decode("latin-1").splitlines():
                    k, _, v = line.partition(":")
                    if k.lower() == "status":
                        status = int(v.strip().split()[0])
                    elif k:
                        headers[k.strip()] = v.strip()
                self.answer(status, body, headers)

        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert_dir / "leaf.pem", cert_dir / "leaf.key")
        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        self.server.socket = ctx.wrap_socket(self.server.socket, server_side=True)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def create_repo(self, owner: str, name: str, branches: dict[str, list[tuple[str, dict[str, str]]]]) -> None:
        """A bare repository at root/owner/name. `branches`: name → commits (subject, files),
        each branch starting from `main`'s first commit; `main` comes first."""
        bare = self.root / owner / name
        work = self.root / ".work" / owner / name
        bare.parent.mkdir(parents=True, exist_ok=True)
        work.mkdir(parents=True, exist_ok=True)
        git("init", "--quiet", "--bare", "--initial-branch=main", str(bare))
        git("init", "--quiet", "--initial-branch=main", str(work))
        for branch, commits in branches.items():
            if branch != "main":
                first = git("rev-list", "--max-parents=0", "main", cwd=work).split()[0]
                git("checkout", "--quiet", "-b", branch, first, cwd=work)
            for subject, files in commits:
                for path, text in files.items():
                    (work / path).write_text(text)
                git("add", "-A", cwd=work)
                git("commit", "--quiet", "-m", subject, cwd=work)
            git("push", "--quiet", str(bare), f"{branch}:{branch}", cwd=work)
            git("checkout", "--quiet", "main", cwd=work)

    def commit(self, owner: str, name: str, branch: str, subject: str, files: dict[str, str]) -> str:
        """Adds a commit to `branch` of the repository; returns its SHA."""
        work = self.root / ".work" / owner / name
        bare = self.root / owner / name
        git("checkout", "--quiet", branch, cwd=work)
        for path, text in files.items():
            (work / path).write_text(text)
        git("add", "-A", cwd=work)
        git("commit", "--quiet", "-m", subject, cwd=work)
        git("push", "--quiet", str(bare), f"{branch}:{branch}", cwd=work)
        return git("rev-parse", "HEAD", cwd=work).strip()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "certs":
        make_certs(Path(sys.argv[2]))
    else:
        sys.exit("usage: fake_git.py certs DIR")
