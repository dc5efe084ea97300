"""Benchmark: sign and verify Open Badges 3.0 credentials (eddsa-rdfc-2022), Python side.

Run by hand from the repository root (not collected by pytest):

    .venv/bin/python tests/bench/bench_badges.py [--count 10000] [--issue 200] [--quick]

What it does:

1. Migrates a SQLite database in a temporary folder, imports the sample catalog and issues one
   real Active Listening credential through the credentials service, to take its shape (issuer
   profile, achievement with criteria and alignment, recipient, evidence, status entry).
2. Signs COUNT distinct credentials of that shape (each its own id, recipient salt and hash,
   status index) with the issuer's key: canonicalization (pyld, URDNA2015, bundled contexts)
   of the proof options and the document, SHA-256, Ed25519. Prints credentials per second.
3. Verifies the COUNT signed credentials (did:key resolved locally, the same canonicalization,
   Ed25519 verify), and checks every one verified. Prints credentials per second.
4. With --issue N, also issues N badges end to end (database rows, status index, signing, one
   transaction each) and prints badges per second.

Single process, on whatever cores the machine has (the figures in README were taken on the
2-core CI machine). The count bounds the run: 10,000 takes a few minutes.
"""

from __future__ import annotations

import argparse
import copy
import logging
import secrets
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from lti_tool import migrate  # noqa: E402
from lti_tool.credentials import proof  # noqa: E402
from lti_tool.credentials.documents import EMAIL, Recipient  # noqa: E402
from lti_tool.credentials.models import IssuerKey  # noqa: E402
from lti_tool.db import utcnow  # noqa: E402
from lti_tool.services import Services  # noqa: E402
from lti_tool.settings import load_settings  # noqa: E402
from tests.unit import badges_support as support  # noqa: E402


def _variants(template: dict, count: int) -> list[dict]:
    """COUNT unsigned credentials shaped like `template`, each with its own id, recipient and
    status index."""
    unsigned = {k: v for k, v in template.items() if k != "proof"}
    base_id = template["id"].rsplit("/", 1)[0]
    status_url = template["credentialStatus"]["statusListCredential"]
    documents = []
    for n in range(count):
        document = copy.deepcopy(unsigned)
        document["id"] = f"{base_id}/{uuid.uuid4().hex}"
        recipient = Recipient.hashed(EMAIL, f"learner{n}@school.example", secrets.token_hex(16))
        document["credentialSubject"]["identifier"] = [recipient.ob3()]
        index = secrets.randbelow(131_072)
        document["credentialStatus"].update(id=f"{status_url}#{index}", statusListIndex=str(index))
        documents.append(document)
    return documents


def _rate(count: int, seconds: float) -> str:
    each = 1000 * seconds / count
    return f"{count / seconds:,.1f} credentials/s ({seconds:.1f} s, {each:.2f} ms each)"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=10_000, help="credentials to sign and verify")
    parser.add_argument("--issue", type=int, default=0, help="also issue N badges end to end")
    parser.add_argument(
        "--quick", action="store_true", help="200 credentials and 20 issued (run_all --quick)"
    )
    args = parser.parse_args()
    if args.quick:
        args.count, args.issue = 200, 20
    if args.count < 1 or args.issue < 0:
        parser.error("--count must be at least 1 and --issue at least 0")
    logging.getLogger("lti_tool").setLevel(logging.WARNING)

    with tempfile.TemporaryDirectory(prefix="bench-badges-") as folder:
        settings = load_settings(base_url="https://tool.example", instance_path=folder)
        services = Services(settings)
        migrate.upgrade(services.engine)
        support.load_catalogs(services)
        learner = support.add_learner(services, support.add_platform(services))
        template = support.issue(services, learner, "active-listening").credential.document
        with services.session_factory() as session:
            key = session.query(IssuerKey).one()
            signer = proof.Signer.from_pem(key.private_pem)

        documents = _variants(template, args.count)
        print(f"Open Badges 3.0 credentials of {len(str(template)):,} characters, "
              f"eddsa-rdfc-2022, {args.count:,} of them")  # fmt: skip

        started = time.perf_counter()
        created = utcnow()
        signed = [proof.sign(document, signer, created) for document in documents]
        sign_seconds = time.perf_counter() - started
        print(f"sign:   {_rate(args.count, sign_seconds)}")

        started = time.perf_counter()
        methods = {proof.verify(document) for document in signed}
        verify_seconds = time.perf_counter() - started
        print(f"verify: {_rate(args.count, verify_seconds)}")
        if methods != {signer.verification_method}:
            print("ERROR: a credential did not verify with the issuer's key")
            return 1

        if args.issue:
            started = time.perf_counter()
            for n in range(args.issue):
                other = support.add_learner(services, learner.platform_id, f"Learner {n}")
                support.issue(services, other, "active-listening")
            issue_seconds = time.perf_counter() - started
            rate = args.issue / issue_seconds
            print(f"issue end to end (learner setup included): {rate:,.1f} badges/s "
                  f"({issue_seconds:.1f} s)")  # fmt: skip
        services.engine.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
