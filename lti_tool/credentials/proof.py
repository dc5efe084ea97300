"""Ed25519 keys as did:key, and Data Integrity proofs with the `eddsa-rdfc-2022` cryptosuite.

What credential wallets and `@digitalbazaar/vc` verify (W3C VC Data Integrity EdDSA
Cryptosuites v1.0, section 3.3): the proof options (with the document's `@context`) and the
document without its proof are canonicalized; the data signed is SHA-256 of the first followed
by SHA-256 of the second; `proofValue` is `z` + base58btc of the Ed25519 signature.

The key resolves without a network: `did:key:z6Mk...` is `z` + base58btc(0xed 0x01 + the 32-byte
public key), and its verification method is `did:key:z6Mk...#z6Mk...`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime

import base58
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from lti_tool.credentials.jsonld import canonize

ED25519_MULTICODEC = b"\xed\x01"
CRYPTOSUITE = "eddsa-rdfc-2022"
PROOF_TYPE = "DataIntegrityProof"
ASSERTION_METHOD = "assertionMethod"


class ProofError(ValueError):
    """A credential's proof is missing, malformed, from an unknown key, or does not verify."""


# -- keys --------------------------------------------------------------------------------------
def new_private_pem() -> str:
    """A new Ed25519 private key as PKCS#8 PEM (how the tool keeps its keys in the database)."""
    key = Ed25519PrivateKey.generate()
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def load_private_pem(pem: str) -> Ed25519PrivateKey:
    key = serialization.load_pem_private_key(pem.encode(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError("not an Ed25519 private key")
    return key


def public_multibase(public: Ed25519PublicKey) -> str:
    """The Multikey `publicKeyMultibase` of an Ed25519 public key (`z6Mk...`)."""
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return "z" + base58.b58encode(ED25519_MULTICODEC + raw).decode()


def public_key_of_multibase(value: str) -> Ed25519PublicKey:
    if not value.startswith("z"):
        raise ProofError(f"{value!r} is not base58btc multibase")
    try:
        raw = base58.b58decode(value[1:])
    except ValueError:
        raise ProofError(f"{value!r} is not base58btc") from None
    if len(raw) != 34 or raw[:2] != ED25519_MULTICODEC:
        raise ProofError(f"{value!r} is not an Ed25519 public key")
    return Ed25519PublicKey.from_public_bytes(raw[2:])


def did_key(multibase: str) -> str:
    return f"did:key:{multibase}"


def verification_method(multibase: str) -> str:
    return f"{did_key(multibase)}#{multibase}"


def public_key_of_verification_method(method: str) -> Ed25519PublicKey:
    """Resolve a did:key verification method locally (no network, no registry)."""
    did, _, fragment = method.partition("#")
    if not did.startswith("did:key:"):
        raise ProofError(f"the verification method {method!r} is not a did:key")
    multibase = did.removeprefix("did:key:")
    if fragment and fragment != multibase:
        raise ProofError(f"the verification method {method!r} names another key than its DID")
    return public_key_of_multibase(multibase)


def did_document(multibase: str) -> dict:
    """The DID document a did:key resolves to (what an issuer page may show)."""
    did = did_key(multibase)
    method = verification_method(multibase)
    return {
        "@context": ["https://www.w3.org/ns/did/v1", "https://w3id.org/security/multikey/v1"],
        "id": did,
        "verificationMethod": [
            {"id": method, "type": "Multikey", "controller": did, "publicKeyMultibase": multibase}
        ],
        "authentication": [method],
        "assertionMethod": [method],
        "capabilityDelegation": [method],
        "capabilityInvocation": [method],
    }


# -- proofs ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Signer:
    """An issuer's private key and the verification method that names its public half."""

    private_key: Ed25519PrivateKey
    verification_method: str

    @classmethod
    def from_pem(cls, pem: str) -> Signer:
        key = load_private_pem(pem)
        return cls(key, verification_method(public_multibase(key.public_key())))


def xsd_datetime(moment: datetime) -> str:
    """An xsd:dateTime in UTC to the second, as credentials write them (2026-12-01T18:40:00Z)."""
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _hash_data(document: dict, options: dict) -> bytes:
    unsigned = {k: v for k, v in document.items() if k != "proof"}
    proof_config = {**options, "@context": document["@context"]}
    proof_config.pop("proofValue", None)
    return (
        hashlib.sha256(canonize(proof_config).encode()).digest()
        + hashlib.sha256(canonize(unsigned).encode()).digest()
    )


def sign(document: dict, signer: Signer, created: datetime) -> dict:
    """The document with an `eddsa-rdfc-2022` DataIntegrityProof (proof purpose assertionMethod)."""
    options = {
        "type": PROOF_TYPE,
        "cryptosuite": CRYPTOSUITE,
        "created": xsd_datetime(created),
        "verificationMethod": signer.verification_method,
        "proofPurpose": ASSERTION_METHOD,
    }
    signature = signer.private_key.sign(_hash_data(document, options))
    proof = {**options, "proofValue": "z" + base58.b58encode(signature).decode()}
    return {**{k: v for k, v in document.items() if k != "proof"}, "proof": proof}


def verify(document: dict) -> str:
    """Check a document's eddsa-rdfc-2022 proof with its did:key; return the verification
    method. Raises ProofError with the reason when it does not verify."""
    proof = document.get("proof")
    if not isinstance(proof, dict):
        raise ProofError("the credential has no proof")
    if proof.get("type") != PROOF_TYPE or proof.get("cryptosuite") != CRYPTOSUITE:
        raise ProofError(f"the proof is not a {PROOF_TYPE} with the {CRYPTOSUITE} cryptosuite")
    if proof.get("proofPurpose") != ASSERTION_METHOD:
        raise ProofError("the proof's purpose is not assertionMethod")
    method = str(proof.get("verificationMethod", ""))
    public = public_key_of_verification_method(method)
    issuer = document.get("issuer")
    issuer_id = issuer.get("id") if isinstance(issuer, dict) else issuer
    if issuer_id != method.partition("#")[0]:
        raise ProofError("the proof's key does not belong to the credential's issuer")
    value = str(proof.get("proofValue", ""))
    if not value.startswith("z"):
        raise ProofError("the proofValue is not base58btc multibase")
    try:
        signature = base58.b58decode(value[1:])
    except ValueError:
        raise ProofError("the proofValue is not base58btc") from None
    try:
        public.verify(signature, _hash_data(document, proof))
    except InvalidSignature:
        raise ProofError("Invalid signature") from None
    return method
