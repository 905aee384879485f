"""A real credvault server for the client's tests: the built binary (CREDVAULT_BIN, else the
repository's target/debug/credvault) on free loopback ports, on a SQLite file, with a token for
every customer made by `credvault token create`, and Vultr verification pointed at a local fake
that accepts one key. Never skipped: without the binary the tests fail, saying how to build it."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
GOOD_VULTR_KEY = "VULTR-PYTHON-GOOD-KEY-0001"


def binary() -> Path:
    path = Path(os.environ.get("CREDVAULT_BIN", ROOT / "target" / "debug" / "credvault"))
    if not path.is_file():
        pytest.fail(f"no credvault binary at {path}: run `cargo build` (or set CREDVAULT_BIN)")
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class FakeVultr(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        good = self.headers.get("Authorization") == f"Bearer {GOOD_VULTR_KEY}" and self.path == "/v2/account"
        body = {"account": {"name": "Acme Ops", "email": "ops@acme.test", "acls": []}} if good else {"error": "Invalid API token."}
        data = json.dumps(body).encode()
        self.send_response(200 if good else 401)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


@dataclass
class Server:
    """A running credvault; `stop()` and `start()` keep its ports, key and database."""

    dir: Path
    env: dict[str, str]
    grpc_port: int
    http_port: int
    token: str = ""
    customer_id: str = ""
    #: More `serve` flags (TLS).
    args: list[str] = field(default_factory=list)
    process: subprocess.Popen[bytes] | None = None
    log: Path = field(init=False)

    def __post_init__(self) -> None:
        self.log = self.dir / "server.log"

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    def cli(self, *args: str) -> str:
        done = subprocess.run([str(binary()), *args], env=self.env, capture_output=True, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"credvault {' '.join(args)} failed: {done.stderr.decode()}")
        return done.stdout.decode().strip()

    def start(self) -> None:
        args = ["serve", "--grpc-addr", self.target, "--http-addr", f"127.0.0.1:{self.http_port}", *self.args]
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen([str(binary()), *args], env=self.env, stdout=log, stderr=log)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.http_port), timeout=0.2) as s:
                    s.sendall(b"GET /readyz HTTP/1.0\r\n\r\n")
                    if b" 200 " in s.recv(64):
                        return
            except OSError:
                pass
            if self.process.poll() is not None:
                raise RuntimeError(f"credvault exited: {self.log.read_text()}")
            time.sleep(0.05)
        raise RuntimeError(f"credvault did not become ready: {self.log.read_text()}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def start_server(directory: Path, vultr_url: str, args: list[str] | None = None) -> Server:
    """A new server on its own SQLite database and key, with a token for every customer."""
    key = subprocess.run([str(binary()), "keygen"], capture_output=True, check=True).stdout.decode().strip()
    env = {
        "PATH": os.environ.get("PATH", ""),
        "CREDENTIAL_ENCRYPTION_KEY": key,
        "CREDVAULT_DATABASE_URL": f"sqlite://{directory / 'credvault.db'}",
        "CREDVAULT_VULTR_API_URL": vultr_url,
        "CREDVAULT_VERIFY_TIMEOUT_SECS": "5",
        # The tests verify when they choose; the other providers are the real ones.
        "CREDVAULT_REVERIFY_INTERVAL": "off",
    }
    running = Server(directory, env, free_port(), free_port(), args=args or [])
    running.customer_id = running.cli("customer", "create", "--email", "collector@example.com", "--company-name", "Collector Co")
    running.token = running.cli("token", "create", "--name", "pytest", "--scopes", "*", "--customer", "*")
    running.start()
    return running


@pytest.fixture(scope="session")
def fake_vultr() -> Iterator[str]:
    """The fake Vultr API's base URL."""
    fake = ThreadingHTTPServer(("127.0.0.1", 0), FakeVultr)
    threading.Thread(target=fake.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{fake.server_address[1]}"
    fake.shutdown()


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory, fake_vultr: str) -> Iterator[Server]:
    running = start_server(tmp_path_factory.mktemp("credvault"), fake_vultr)
    yield running
    running.stop()


@pytest.fixture()
def customer(server: Server) -> str:
    """A fresh customer for one test."""
    stamp = time.time_ns()
    return server.cli("customer", "create", "--email", f"c{stamp}@example.com", "--company-name", "Test Co")
