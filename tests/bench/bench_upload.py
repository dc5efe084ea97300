"""Benchmark: a 200 MB evidence upload through the real HTTP server, and the server's memory.

Run by hand from the repository root (not collected by pytest):

    .venv/bin/python tests/bench/bench_upload.py [--quick] [--sqlite]

Serves the tool with `lti-tool serve --workers 1` (gunicorn, one worker: the process measured)
on a fresh database (PostgreSQL and Redis when they answer, else SQLite), then uploads one
video of 200 MB (an MP4: its header, then zeros) to a learner's draft the way a browser does
(multipart/form-data, with Content-Length) and the way the page's script does (the raw body),
each over one loopback connection. Prints for each the time, the throughput, and the worker's
peak resident memory above its idle size (Linux /proc: VmHWM after resetting it, against
VmRSS once warmed up). The goal is under 64 MB above idle; the run exits 1 if it is not met or
an upload fails. `--quick` uploads 50 MB instead. Bounded: two uploads, each with a timeout.
"""

from __future__ import annotations

import argparse
import http.client
import struct
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlencode, urlsplit

BENCH_DIR = Path(__file__).resolve().parent
if str(BENCH_DIR) not in sys.path:
    sys.path.insert(0, str(BENCH_DIR))

from evidence_bench import KEY, describe, served_tool  # noqa: E402

MB = 1024 * 1024
GOAL_MB = 64
CHUNK = 1 * MB
TIMEOUT = 300
REQUIREMENT = "conversation-recording"  # accepts video


def mp4_chunks(size: int) -> Iterator[bytes]:
    """An MP4 of exactly `size` bytes: ftyp, then one mdat box of zeros."""
    ftyp = struct.pack(">I4s", 24, b"ftyp") + b"isom\x00\x00\x02\x00isomiso2"
    mdat_header = struct.pack(">I4s", size - len(ftyp), b"mdat")
    yield ftyp + mdat_header
    left = size - len(ftyp) - len(mdat_header)
    zeros = bytes(CHUNK)
    while left > 0:
        piece = zeros if left >= CHUNK else zeros[:left]
        left -= len(piece)
        yield piece


def status_kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} for {pid}")


def reset_peak(pid: int) -> bool:
    """Reset the process's peak RSS (VmHWM) to its current size (Linux >= 4.0)."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
        return True
    except OSError:
        return False


class RssSampler:
    """VmRSS every 20 ms: the peak, if VmHWM cannot be reset."""

    def __init__(self, pid: int) -> None:
        self.pid, self.peak_kb, self._stop = pid, 0, threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.peak_kb = max(self.peak_kb, status_kb(self.pid, "VmRSS"))
            except (OSError, RuntimeError):
                return
            time.sleep(0.02)

    def __enter__(self) -> RssSampler:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self.thread.join(timeout=2)


def send(base_url: str, path: str, query: dict, headers: dict, body: Iterator[bytes],
         length: int) -> tuple[int, str]:  # fmt: skip
    parts = urlsplit(base_url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=TIMEOUT)
    try:
        connection.putrequest("POST", f"{path}?{urlencode(query)}")
        for name, value in {**headers, "Content-Length": str(length)}.items():
            connection.putheader(name, value)
        connection.endheaders()
        for chunk in body:
            connection.send(chunk)
        response = connection.getresponse()
        return response.status, response.read(2000).decode(errors="replace")
    finally:
        connection.close()


def multipart(size: int, name: str) -> tuple[str, Iterator[bytes], int]:
    boundary = uuid.uuid4().hex
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; "
            f"filename=\"{name}\"\r\nContent-Type: video/mp4\r\n\r\n").encode()  # fmt: skip
    tail = f"\r\n--{boundary}--\r\n".encode()

    def chunks() -> Iterator[bytes]:
        yield head
        yield from mp4_chunks(size)
        yield tail

    return f"multipart/form-data; boundary={boundary}", chunks(), len(head) + size + len(tail)


def measure(tool, token: str, size: int, shape: str) -> dict:
    pid = tool.worker_pid()
    idle_kb = status_kb(pid, "VmRSS")
    hwm_reset = reset_peak(pid)
    path = f"/evidence/{KEY}/files/{REQUIREMENT}"
    if shape == "multipart":
        content_type, body, length = multipart(size, "conversation.mp4")
        query, headers = {"lt": token}, {"Content-Type": content_type}
        expected = 303
    else:
        body, length = mp4_chunks(size), size
        query = {"lt": token, "name": "conversation-raw.mp4"}
        headers = {"Content-Type": "video/mp4", "Accept": "application/json"}
        expected = 200
    with RssSampler(pid) as sampler:
        started = time.perf_counter()
        status, text = send(tool.base_url, path, query, headers, body, length)
        seconds = time.perf_counter() - started
    peak_kb = status_kb(pid, "VmHWM") if hwm_reset else sampler.peak_kb
    return {
        "shape": shape,
        "ok": status == expected,
        "status": status,
        "text": text,
        "seconds": seconds,
        "idle_mb": idle_kb / 1024,
        "peak_mb": max(peak_kb, sampler.peak_kb) / 1024,
        "above_mb": (max(peak_kb, sampler.peak_kb) - idle_kb) / 1024,
        "how": "VmHWM reset before the upload" if hwm_reset else "VmRSS sampled every 20 ms",
    }


def warm_up(tool, token: str) -> None:
    """Load every code path once (page, a small upload) so idle means warmed up."""
    import requests

    requests.get(f"{tool.base_url}/evidence/{KEY}", params={"lt": token}, timeout=30)
    content_type, body, length = multipart(2 * MB, "warm-up.mp4")
    send(tool.base_url, f"/evidence/{KEY}/files/{REQUIREMENT}", {"lt": token},
         {"Content-Type": content_type}, body, length)  # fmt: skip


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="50 MB instead of 200 MB")
    parser.add_argument("--sqlite", action="store_true", help="SQLite, no Redis")
    args = parser.parse_args(argv)
    size = (50 if args.quick else 200) * MB - 64 * 1024  # within the 200 MB limit
    with (
        tempfile.TemporaryDirectory(prefix="bench-upload-") as workdir,
        served_tool(Path(workdir), learners=1, workers=1, sqlite=args.sqlite) as tool,
    ):
        print(f"tool: gunicorn, 1 worker, {describe(tool)}", flush=True)
        token = tool.tokens[0]
        warm_up(tool, token)
        results = [measure(tool, token, size, shape) for shape in ("multipart", "raw")]
    print(f"\nupload of {size / MB:.1f} MB (an MP4 video) over loopback; goal: peak memory "
          f"< {GOAL_MB} MB above idle")  # fmt: skip
    print(f"{'body':<10} {'status':>6} {'seconds':>8} {'MB/s':>7} {'idle MB':>8} "
          f"{'peak MB':>8} {'above idle':>11}")  # fmt: skip
    failed = False
    for r in results:
        verdict = "" if r["above_mb"] < GOAL_MB else " (missed)"
        print(f"{r['shape']:<10} {r['status']:>6} {r['seconds']:>8.2f} "
              f"{size / MB / r['seconds']:>7.1f} {r['idle_mb']:>8.1f} {r['peak_mb']:>8.1f} "
              f"{r['above_mb']:>10.1f}{verdict}")  # fmt: skip
        if not r["ok"]:
            print(f"  upload failed: {r['text'][:300]}")
        failed |= not r["ok"] or r["above_mb"] >= GOAL_MB
    print(f"(memory: {results[0]['how']})")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
