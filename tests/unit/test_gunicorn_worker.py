"""The gunicorn worker `lti-tool serve` runs (lti_tool/gunicorn_worker.py), run for real.

Each test starts gunicorn in its own process with the worker and a probe app that tells which
request it answered and how often the worker's event loop handed a connection to a thread. The
worker relies on the internals of gunicorn's threaded worker; these tests are what notice when
a gunicorn release changes them.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from lti_tool.settings import REPO_ROOT
from tests.support.servers import free_port, lti_tool_command, stop_gracefully

START_SECONDS = 30
SOCKET_TIMEOUT = 15  # a request nobody answers fails the test instead of hanging it


class Gunicorn:
    def __init__(self, process: subprocess.Popen, port: int, log: Path) -> None:
        self.process = process
        self.port = port
        self.log = log

    def connection(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=SOCKET_TIMEOUT)

    def stop(self) -> int:
        """SIGTERM (a graceful stop) and the exit code; fails the test if it does not stop."""
        if not stop_gracefully(self.process):
            pytest.fail(f"gunicorn did not stop on SIGTERM:\n{self.log.read_text()}")
        return self.process.returncode


@contextmanager
def running(command: list[str], log: Path, port: int, env: dict[str, str]) -> Iterator[Gunicorn]:
    with log.open("wb") as output:
        process = subprocess.Popen(
            command,
            cwd=REPO_ROOT,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    server = Gunicorn(process, port, log)
    try:
        deadline = time.monotonic() + START_SECONDS
        while True:
            if process.poll() is not None:
                pytest.fail(f"gunicorn exited ({process.returncode}):\n{log.read_text()}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail(f"gunicorn did not listen in {START_SECONDS}s:\n{log.read_text()}")
                time.sleep(0.05)
        yield server
    finally:
        server.stop()


@pytest.fixture
def probe(tmp_path):
    """Start gunicorn with the tool's worker (counting hand-offs) and the probe app."""

    @contextmanager
    def start(threads: int = 4) -> Iterator[Gunicorn]:
        port = free_port()
        command = [
            sys.executable, "-m", "gunicorn",
            "--worker-class", "tests.support.gunicorn_probe.CountingWorker",
            "--workers", "1",
            "--threads", str(threads),
            "--bind", f"127.0.0.1:{port}",
            "--graceful-timeout", "10",
            "tests.support.gunicorn_probe:app",
        ]  # fmt: skip
        env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
        with running(command, tmp_path / "gunicorn.log", port, env) as server:
            yield server

    return start


def ask(connection: http.client.HTTPConnection, path: str = "/", body: bytes = b"") -> dict:
    connection.request("POST" if body else "GET", path, body=body or None)
    response = connection.getresponse()
    answer = response.read()
    assert response.status == 200, answer
    return json.loads(answer)


def server_socket(server: Gunicorn) -> socket.socket:
    return socket.create_connection(("127.0.0.1", server.port), timeout=SOCKET_TIMEOUT)


def read_response(stream) -> tuple[int, bytes]:
    """One HTTP/1.1 response (status and body, sized by Content-Length) from a socket's file."""
    status = int(stream.readline().split()[1])
    length = 0
    while (line := stream.readline()) not in (b"\r\n", b""):
        name, _, value = line.decode().partition(":")
        if name.strip().lower() == "content-length":
            length = int(value)
    return status, stream.read(length)


def test_an_idle_worker_answers_a_connections_next_requests_in_the_same_thread(probe):
    with probe() as server:
        connection = server.connection()
        first = ask(connection)
        answers = [ask(connection, body=b"x" * size) for size in range(0, 4000, 200)]
        connection.close()
    assert [a["body_length"] for a in answers] == list(range(0, 4000, 200))
    assert [a["request"] for a in answers] == list(range(2, 22))
    # The event loop handed the connection to a thread once; each later request was read by the
    # thread that had answered the one before. A few may still go through the loop when this
    # test's process is slower than the wait (the suite runs beside other tests).
    handed_off_again = answers[-1]["hand_offs"] - first["hand_offs"]
    assert handed_off_again <= 5, f"{handed_off_again} of 20 requests went through the loop"


def test_pipelined_requests_are_all_answered_in_order(probe):
    requests = (
        b"POST /a HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello"
        b"GET /b HTTP/1.1\r\nHost: t\r\n\r\n"
        b"POST /c HTTP/1.1\r\nHost: t\r\nContent-Length: 1000\r\n\r\n" + b"y" * 1000
    )
    with probe() as server, server_socket(server) as sock:
        sock.sendall(requests)
        stream = sock.makefile("rb")
        answers = [read_response(stream) for _ in range(3)]
    assert [status for status, _ in answers] == [200, 200, 200]
    bodies = [json.loads(body) for _, body in answers]
    assert [b["body_length"] for b in bodies] == [5, 0, 1000]
    assert [b["request"] for b in bodies] == [1, 2, 3]


def test_while_another_thread_is_busy_each_request_goes_back_through_the_event_loop(probe):
    """A thread must not sit waiting on one connection while the worker has work elsewhere."""
    with probe(threads=2) as server:
        slow = threading.Thread(target=lambda: ask(server.connection(), "/slow?ms=3000"))
        slow.start()
        time.sleep(0.5)  # the slow request is in its thread
        connection = server.connection()
        answers = [ask(connection) for _ in range(6)]
        slow.join()
    hand_offs = [a["hand_offs"] for a in answers]
    assert hand_offs == list(range(hand_offs[0], hand_offs[0] + 6))


def test_more_kept_alive_clients_than_threads_are_all_answered(probe):
    clients, requests_each = 12, 15
    failures: list[str] = []
    answered: list[int] = []

    def client(number: int) -> None:
        connection = None
        try:
            connection = probe_server.connection()
            for i in range(requests_each):
                body = f"{number}-{i}".encode() * (i + 1)
                answer = ask(connection, "/slow?ms=2" if i % 3 == 0 else "/", body)
                assert answer["body_length"] == len(body)
                answered.append(number)
        except Exception as error:  # reported below, with the client that saw it
            failures.append(f"client {number}: {error!r}")
        finally:
            if connection is not None:
                connection.close()

    with probe(threads=2) as probe_server:
        threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert failures == []
    assert len(answered) == clients * requests_each


def test_clients_that_close_or_half_close_after_an_answer_leave_the_worker_serving(probe):
    with probe() as server:
        for _ in range(10):
            connection = server.connection()
            ask(connection)
            connection.close()  # gone while the thread waits for a next request
        with server_socket(server) as sock:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
            sock.shutdown(socket.SHUT_WR)  # nothing more will come
            status, _ = read_response(sock.makefile("rb"))
        assert status == 200
        assert ask(server.connection())["request"] == 12
        log = server.log.read_text()
    assert "Traceback" not in log and "Error" not in log, log


def test_a_stop_with_a_kept_alive_connection_open_is_prompt_and_clean(probe):
    with probe() as server:
        connection = server.connection()
        ask(connection)  # the connection stays open, kept alive
        started = time.monotonic()
        code = server.stop()
        stopped_in = time.monotonic() - started
    assert code == 0, server.log.read_text()
    assert stopped_in < 8, f"stopping took {stopped_in:.1f}s"  # not the 10 s graceful timeout
    assert "Traceback" not in server.log.read_text()


@pytest.mark.parametrize(
    ("threads", "worker"),
    [("4", "lti_tool.gunicorn_worker.KeepAliveThreadWorker"), ("1", "sync")],
)
def test_lti_tool_serve_runs_this_worker_and_sync_workers_with_one_thread(
    tmp_path, threads, worker
):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("LTI_TOOL_")}
    env.update(LTI_TOOL_INSTANCE_PATH=str(tmp_path / "instance"), PYTHONUNBUFFERED="1")
    subprocess.run([*lti_tool_command(), "db", "upgrade"], env=env, check=True, timeout=120)
    command = [
        *lti_tool_command(), "serve", "--port", str(port), "--workers", "1", "--threads", threads
    ]  # fmt: skip
    with running(command, tmp_path / "serve.log", port, env) as server:
        connection = server.connection()
        for _ in range(3):  # one kept-alive connection
            connection.request("GET", "/health")
            response = connection.getresponse()
            assert response.status == 200, response.read()
            response.read()
        connection.close()
    assert f"Using worker: {worker}" in server.log.read_text()
