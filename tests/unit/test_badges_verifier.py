"""The tool's Open Badges 3.0 credentials verify with an independent, well-known verifier.

`@digitalbazaar/vc` with the eddsa-rdfc-2022 cryptosuite (tests/verifier, installed from the
npm registry by `npm ci` once, cached in tests/verifier/node_modules until package-lock.json
changes) runs offline with the same bundled contexts and resolves did:key locally. Credentials
issued here must verify; changed ones must fail. Without node/npm the tests are skipped with
the reason, except under CI=true, where that is a failure.
"""

from __future__ import annotations

import copy
import hashlib
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from lti_tool.credentials import service as badges
from lti_tool.db import transaction
from tests.integration.conftest import unavailable
from tests.unit.badges_support import SAMPLE_KEYS, add_learner, add_platform, issue, load_catalogs

VERIFIER = Path(__file__).resolve().parents[1] / "verifier"
STAMP = VERIFIER / "node_modules" / ".package-lock.sha256"
NPM_CI_TIMEOUT = 300


@pytest.fixture(scope="session")
def node_verifier() -> Path:
    """tests/verifier with its packages installed (npm ci only when the lock file changed)."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        unavailable("node and npm are needed to run the independent Open Badges verifier")
    lock_hash = hashlib.sha256((VERIFIER / "package-lock.json").read_bytes()).hexdigest()
    if not (STAMP.exists() and STAMP.read_text().strip() == lock_hash):
        try:
            done = subprocess.run(
                [npm, "ci", "--no-audit", "--no-fund", "--prefer-offline"],
                cwd=VERIFIER,
                capture_output=True,
                text=True,
                timeout=NPM_CI_TIMEOUT,
            )
        except subprocess.TimeoutExpired:
            unavailable(f"npm ci in {VERIFIER} took more than {NPM_CI_TIMEOUT} s")
        if done.returncode != 0:
            tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
            unavailable(f"npm ci in {VERIFIER} failed: {' / '.join(tail)}")
        STAMP.write_text(lock_hash)
    return VERIFIER / "verify.mjs"


def run_verifier(
    script: Path, tmp_path: Path, credentials: dict[str, dict], status_lists: list[dict]
) -> dict[str, dict]:
    """Verify each credential with the node verifier, its revocation status checked against
    `status_lists`; name -> {"verified", "error"}."""
    args = []
    for n, status_list in enumerate(status_lists):
        path = tmp_path / f"status-list-{n}.json"
        path.write_text(json.dumps(status_list), encoding="utf-8")
        args += ["--status", str(path)]
    for name, credential in credentials.items():
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps(credential), encoding="utf-8")
        args.append(str(path))
    done = subprocess.run(["node", str(script), *args], capture_output=True, text=True, timeout=120)
    assert done.stderr == "" or "Warning" in done.stderr, done.stderr
    results = {}
    for line in done.stdout.splitlines():
        result = json.loads(line)
        results[Path(result["file"]).stem] = result
    assert set(results) == set(credentials), done.stdout + done.stderr
    return results


@pytest.fixture
def learner(services):
    load_catalogs(services)
    return add_learner(services, add_platform(services))


def test_issued_credentials_verify_and_changed_ones_do_not(
    services, learner, node_verifier, tmp_path
):
    services.settings = services.settings.replace(badge_valid_days=730)
    issued = [issue(services, learner, key) for key in SAMPLE_KEYS]
    micro = issued[0].credential.document
    (stack,) = issued[-1].stack_credentials
    with services.session_factory() as session:
        status_list = badges.status_list_credential(session, services.settings, 1)

    renamed = copy.deepcopy(micro)
    renamed["credentialSubject"]["achievement"]["name"] = "Something Else"
    other_recipient = copy.deepcopy(micro)
    other_recipient["credentialSubject"]["identifier"][0]["identityHash"] = "sha256$" + "0" * 64
    later = copy.deepcopy(stack.document)
    later["validUntil"] = "2099-01-01T00:00:00Z"
    results = run_verifier(
        node_verifier,
        tmp_path,
        {
            "micro": micro,
            "stack": stack.document,
            "status_list": status_list,
            "renamed": renamed,
            "other_recipient": other_recipient,
            "later": later,
        },
        [status_list],
    )
    for name in ("micro", "stack", "status_list"):
        assert results[name]["verified"] is True, results[name]
    for name in ("renamed", "other_recipient", "later"):
        assert results[name]["verified"] is False
        assert "Invalid signature" in results[name]["error"]


def test_a_revoked_credential_fails_and_the_others_of_its_list_still_verify(
    services, learner, node_verifier, tmp_path
):
    revoked = issue(services, learner, "active-listening").credential
    kept = issue(services, learner, "effective-leadership").credential
    with services.session_factory() as session:
        before = badges.status_list_credential(session, services.settings, 1)
    with transaction(services.session_factory) as session:
        badges.revoke(session, services.settings, revoked.id, "Issued in error", "admin")
    with services.session_factory() as session:
        after = badges.status_list_credential(session, services.settings, 1)
    credentials = {"revoked": revoked.document, "kept": kept.document, "list": after}
    results = run_verifier(node_verifier, tmp_path, credentials, [after])
    assert results["list"]["verified"] is True, results
    assert results["kept"]["verified"] is True, results
    assert results["revoked"]["verified"] is False
    assert "revoked" in results["revoked"]["error"]
    # Against the list as it was before, the same credential was valid.
    (tmp_path / "old").mkdir()
    earlier = run_verifier(node_verifier, tmp_path / "old", {"revoked": revoked.document}, [before])
    assert earlier["revoked"]["verified"] is True, earlier
