"""Evidence uploads on S3Storage against a local S3 emulator (moto's server, on loopback).

The same accept / refuse / interrupt cases as the local storage, and after every refusal or
interruption: no object and no pending multipart upload left in the bucket. Skipped when
moto_server cannot start, failed instead under CI=true.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import time
import tracemalloc
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from lti_tool.evidence.storage import MB, S3_PART_SIZE, S3Storage, UploadRefused, make_storage
from lti_tool.settings import load_settings
from tests.integration.conftest import unavailable
from tests.support.servers import free_port
from tests.unit.test_evidence_storage import (
    ELF,
    MZ,
    SAMPLES,
    pdf_bytes,
    pdf_stream,
    plain_zip_bytes,
    png_bytes,
)

START_SECONDS = 30


@pytest.fixture(scope="module")
def s3_endpoint(tmp_path_factory) -> Iterator[str]:
    """A moto_server subprocess on a free loopback port, stopped after this module."""
    command = Path(sys.executable).with_name("moto_server")
    if not command.exists():
        command = Path(shutil.which("moto_server") or "moto_server")
    if not command.exists():
        unavailable("moto_server is not installed (pip install -e '.[test]')")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log_path = tmp_path_factory.mktemp("moto") / "moto_server.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [str(command), "-H", "127.0.0.1", "-p", str(port)], stdout=log, stderr=log
        )
    try:
        deadline = time.monotonic() + START_SECONDS
        while True:
            if process.poll() is not None:
                unavailable(f"moto_server exited at start: {log_path.read_text()[-500:]}")
            try:
                urllib.request.urlopen(url + "/moto-api/", timeout=2).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    unavailable(f"moto_server did not answer on {url} in {START_SECONDS} s")
                time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture
def make_s3(s3_endpoint: str, tmp_path: Path, monkeypatch):
    """S3Storage built from settings as in production, on a new bucket; credentials from the
    AWS_* environment variables (boto3's chain), never from this machine's ~/.aws."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))

    def make(**overrides: object) -> S3Storage:
        bucket = "evidence-" + uuid.uuid4().hex[:12]
        settings = load_settings(
            environ={},
            instance_path=str(tmp_path / "instance"),
            s3_endpoint_url=s3_endpoint,
            s3_bucket=bucket,
            s3_prefix="evidence/",
            s3_region="us-east-1",
            **overrides,
        )
        storage = make_storage(settings)
        assert isinstance(storage, S3Storage)
        storage.client.create_bucket(Bucket=bucket)
        return storage

    return make


@pytest.fixture
def s3(make_s3) -> S3Storage:
    return make_s3()


def assert_empty(storage: S3Storage) -> None:
    """No object and no pending multipart upload (whose parts would be kept and billed)."""
    client, bucket = storage.client, storage.bucket
    assert client.list_objects_v2(Bucket=bucket).get("KeyCount") == 0
    assert client.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []


# -- accepted --------------------------------------------------------------------------------
@pytest.mark.parametrize("name", list(SAMPLES))
def test_each_allowed_type_is_accepted(s3: S3Storage, name: str) -> None:
    data, kind, content_type = SAMPLES[name]
    stored = s3.save(f"learner-1/{name}-upload.bin", data)
    assert (stored.type.kind, stored.content_type) == (kind, content_type)
    assert (stored.size, stored.sha256) == (len(data), hashlib.sha256(data).hexdigest())
    head = s3.client.head_object(Bucket=s3.bucket, Key=f"evidence/learner-1/{name}-upload.bin")
    assert head["ContentType"] == content_type
    assert s3.exists(stored.key)
    with s3.open(stored.key) as body:
        assert body.read() == data


def test_a_large_file_goes_in_parts_and_reads_back_whole(s3: S3Storage) -> None:
    total = 2 * S3_PART_SIZE + 3 * MB + 17
    expected = hashlib.sha256(b"".join(pdf_stream(total, chunk=MB))).hexdigest()
    stored = s3.save("learner-1/video", pdf_stream(total, chunk=MB))
    assert (stored.size, stored.sha256) == (total, expected)
    head = s3.client.head_object(Bucket=s3.bucket, Key="evidence/learner-1/video")
    assert head["ContentLength"] == total
    assert head["ETag"].strip('"').endswith("-3")  # three parts
    digest = hashlib.sha256()
    with s3.open("learner-1/video") as body:
        while chunk := body.read(MB):
            digest.update(chunk)
    assert digest.hexdigest() == expected
    assert s3.client.list_multipart_uploads(Bucket=s3.bucket).get("Uploads", []) == []


def test_delete_exists_and_missing(s3: S3Storage) -> None:
    s3.save("k", pdf_bytes())
    s3.delete("k")
    assert not s3.exists("k")
    s3.delete("k")
    with pytest.raises(FileNotFoundError):
        s3.open("k")
    assert_empty(s3)


# -- refused ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("data", "words"),
    [(plain_zip_bytes(), "a ZIP archive, not a PDF"), (ELF, "program"), (MZ, "program")],
    ids=["zip-named-pdf", "elf", "mz"],
)
def test_wrong_content_is_refused(s3: S3Storage, data: bytes, words: str) -> None:
    with pytest.raises(UploadRefused) as refused:
        s3.save("learner-1/essay.pdf", data)
    assert refused.value.code == "type_not_allowed"
    assert words in refused.value.message
    assert_empty(s3)


def test_a_kind_left_out_by_configuration_is_refused(make_s3) -> None:
    s3 = make_s3(evidence_allowed_types="pdf,document")
    with pytest.raises(UploadRefused) as refused:
        s3.save("photo", png_bytes())
    assert refused.value.message == (
        "This file is a PNG image, not a PDF or a document (Word, Excel, PowerPoint or "
        "OpenDocument)."
    )
    assert_empty(s3)


def test_too_large_is_refused_at_the_limit_and_its_parts_aborted(make_s3) -> None:
    s3 = make_s3(evidence_max_upload_mb=20)  # two parts are sent before the limit is crossed
    counter = [0]
    with pytest.raises(UploadRefused) as refused:
        s3.save("big", pdf_stream(1024 * MB, chunk=MB, counter=counter))
    assert refused.value.code == "too_large"
    assert 20 * MB < counter[0] <= 21 * MB
    assert_empty(s3)


def test_an_interrupted_upload_leaves_nothing(s3: S3Storage) -> None:
    def broken() -> Iterator[bytes]:
        yield from pdf_stream(S3_PART_SIZE + 2 * MB, chunk=MB)  # one part already sent
        raise ConnectionResetError("the browser went away")

    with pytest.raises(ConnectionResetError):
        s3.save("learner-1/new", broken())
    assert_empty(s3)

    s3.save("learner-1/kept", pdf_bytes("good"))
    with pytest.raises(ConnectionResetError):
        s3.save("learner-1/kept", broken())
    with s3.open("learner-1/kept") as body:
        assert b"good" in body.read()
    assert s3.client.list_multipart_uploads(Bucket=s3.bucket).get("Uploads", []) == []


def test_memory_stays_bounded(s3: S3Storage) -> None:
    total = 64 * MB
    tracemalloc.start()
    try:
        stored = s3.save("learner-1/video", pdf_stream(total, chunk=MB))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert stored.size == total
    # One part (plus the chunk that filled it) and the HTTP client's buffers: about 10 MB.
    assert peak < 2 * S3_PART_SIZE + 4 * MB, f"peak {peak / MB:.1f} MB"
