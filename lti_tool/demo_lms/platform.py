"""The signing side of an LTI platform: keys, JWKS and id_tokens shaped like real LMSs send.

Used by the demo LMS, and by the tests as a stand-in platform.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwcrypto.jwk import JWK

CLAIM = "https://purl.imsglobal.org/spec/lti/claim/"
ROLE = "http://purl.imsglobal.org/vocab/lis/v2/membership#"
INSTITUTION_ROLE = "http://purl.imsglobal.org/vocab/lis/v2/institution/person#"


def new_private_pem() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


@dataclass
class PlatformSigner:
    """One platform identity: issuer, the client id it gave the tool, and its RSA key."""

    issuer: str
    client_id: str
    deployment_id: str
    private_pem: str = field(default_factory=new_private_pem)

    @cached_property
    def _private_key(self):
        # Parsed once: each parse of an RSA private key checks it (about 50 ms of CPU).
        return serialization.load_pem_private_key(self.private_pem.encode(), password=None)

    @cached_property
    def _jwk(self) -> JWK:
        return JWK.from_pyca(self._private_key)

    @property
    def kid(self) -> str:
        return self._jwk.thumbprint()

    def jwks(self) -> dict:
        public = self._jwk.export_public(as_dict=True)
        public.update({"kid": self.kid, "alg": "RS256", "use": "sig"})
        return {"keys": [public]}

    def sign(
        self,
        claims: dict[str, Any],
        headers: dict[str, Any] | None = None,
        algorithm: str = "RS256",
    ) -> str:
        return jwt.encode(
            claims,
            self._private_key,
            algorithm=algorithm,
            headers={"kid": self.kid, **(headers or {})},
        )

    def launch_claims(
        self,
        *,
        nonce: str,
        sub: str,
        roles: list[str],
        target_link_uri: str,
        context: dict[str, Any] | None = None,
        resource_link: dict[str, Any] | None = None,
        person: dict[str, Any] | None = None,
        message_type: str = "LtiResourceLinkRequest",
        extra: dict[str, Any] | None = None,
        lifetime: int = 300,
    ) -> dict[str, Any]:
        """A resource link (or deep linking) launch, with the claims every platform sends."""
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "aud": self.client_id,
            "azp": self.client_id,
            "sub": sub,
            "iat": now,
            "exp": now + lifetime,
            "nonce": nonce,
            CLAIM + "message_type": message_type,
            CLAIM + "version": "1.3.0",
            CLAIM + "deployment_id": self.deployment_id,
            CLAIM + "target_link_uri": target_link_uri,
            CLAIM + "roles": roles,
            CLAIM + "context": context or {},
            CLAIM + "tool_platform": {"guid": self.issuer, "name": "Platform"},
            CLAIM + "launch_presentation": {"document_target": "iframe", "locale": "en"},
            **(person or {}),
        }
        if message_type == "LtiResourceLinkRequest":
            claims[CLAIM + "resource_link"] = resource_link or {"id": str(uuid.uuid4())}
        claims.update(extra or {})
        return claims
