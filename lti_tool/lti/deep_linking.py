"""LTI Deep Linking 2.0: read a request's settings, build and sign the response.

The settings (return URL, `data`, deployment, what the platform accepts) are read from the
launch the platform signed, which pylti1p3 kept in the shared cache under the launch id; never
from a form the browser could change. The response is built with pylti1p3's `DeepLink` and
`DeepLinkResource` and signed with the tool's active key (its `kid` in the header), so the
platform verifies it against the tool's JWKS.
"""

from __future__ import annotations

import typing as t
from dataclasses import dataclass, field

from pylti1p3.deep_link import DeepLink
from pylti1p3.deep_link_resource import DeepLinkResource
from pylti1p3.lineitem import LineItem
from pylti1p3.registration import Registration

from lti_tool.cache import Cache
from lti_tool.catalog.mapping import LINE_ITEM_TAG, SCORE_MAXIMUM, Pick
from lti_tool.lti.adapters import CacheLaunchDataStorage
from lti_tool.lti.launch import (
    AGS_CLAIM,
    CLAIM,
    DEEP_LINKING_REQUEST,
    DL_CLAIM,
    LINEITEM_SCOPE,
    new_nonce,
)

DEEP_LINKING_RESPONSE = "LtiDeepLinkingResponse"
SETTINGS_CLAIM = DL_CLAIM + "deep_linking_settings"
DATA_CLAIM = DL_CLAIM + "data"
CONTENT_ITEMS_CLAIM = DL_CLAIM + "content_items"
RESOURCE_LINK = "ltiResourceLink"
# Custom parameters of every link the tool returns (and reads back at launch).
CUSTOM_CREDENTIAL = "micro_credential"
CUSTOM_STACK = "stack"


class ToolDeepLink(DeepLink):
    """pylti1p3's deep-linking response, with the tool's nonce (see new_nonce)."""

    def _generate_nonce(self) -> str:
        return new_nonce()


class DeepLinkingError(Exception):
    """A deep-linking request the tool cannot answer, or a selection it does not allow."""

    def __init__(self, reason: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.status = status


def _flag(value: t.Any) -> bool | None:
    """A boolean setting, sent as JSON true/false or (by some platforms) as a string."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    return None


@dataclass(frozen=True)
class DeepLinkingRequest:
    """What one deep-linking request asked for, from its signed launch."""

    issuer: str
    client_id: str
    deployment_id: str
    return_url: str
    accept_types: tuple[str, ...]
    # Absent from the request: one item only (the cautious reading).
    accept_multiple: bool
    # None: the platform did not say whether it creates line items; they are sent anyway.
    accept_lineitem: bool | None
    has_data: bool
    data: t.Any = None
    title: str = ""
    text: str = ""
    settings: dict = field(default_factory=dict, compare=False)

    @property
    def accepts_links(self) -> bool:
        return RESOURCE_LINK in self.accept_types

    @property
    def sends_line_items(self) -> bool:
        return self.accept_lineitem is not False

    def check_selection(self, count: int) -> None:
        """Refuse (400) a selection this request does not allow."""
        if not self.accepts_links:
            raise DeepLinkingError(
                "link_not_accepted",
                "Your LMS asked for content of type "
                f"{', '.join(self.accept_types) or '(none)'} here; this tool only offers LTI "
                "resource links. Add the tool from a place that accepts them (an assignment "
                "or a module item).",
            )
        if count > 1 and not self.accept_multiple:
            raise DeepLinkingError(
                "single_item_only",
                f"You picked {count} micro-credentials, but your LMS accepts only one item "
                "from this place. Pick one micro-credential (or add the tool once per "
                "micro-credential).",
            )


def request_from_claims(body: dict[str, t.Any]) -> DeepLinkingRequest:
    """The request's settings from a validated launch body; DeepLinkingError if it is not a
    usable deep-linking request."""
    if body.get(CLAIM + "message_type") != DEEP_LINKING_REQUEST:
        raise DeepLinkingError(
            "not_deep_linking", "This launch is not a content selection (deep linking) request."
        )
    settings = body.get(SETTINGS_CLAIM)
    if not isinstance(settings, dict) or not settings.get("deep_link_return_url"):
        raise DeepLinkingError(
            "missing_deep_linking_settings",
            "The LMS sent a content selection request without its deep_linking_settings "
            "(deep_link_return_url): the tool cannot send anything back.",
        )
    aud = body.get("aud")
    client_id = aud[0] if isinstance(aud, list) and aud else aud
    types = settings.get("accept_types") or []
    return DeepLinkingRequest(
        issuer=str(body.get("iss", "")),
        client_id=str(client_id or ""),
        deployment_id=str(body.get(CLAIM + "deployment_id", "")),
        return_url=str(settings["deep_link_return_url"]),
        accept_types=tuple(x for x in types if isinstance(x, str)),
        accept_multiple=bool(_flag(settings.get("accept_multiple"))),
        accept_lineitem=_flag(settings.get("accept_lineitem")),
        has_data="data" in settings,
        data=settings.get("data"),
        title=str(settings.get("title") or ""),
        text=str(settings.get("text") or ""),
        settings=settings,
    )


def cached_request(cache: Cache, launch_id: str) -> DeepLinkingRequest:
    """The deep-linking request of a launch the tool validated (kept in the shared cache)."""
    body = CacheLaunchDataStorage(cache).get_value(launch_id) if launch_id else None
    if not isinstance(body, dict):
        raise DeepLinkingError(
            "selection_expired",
            "This content selection has expired or is unknown. Start it again from your LMS.",
            410,
        )
    return request_from_claims(body)


class ResourceLinkItem(DeepLinkResource):
    """pylti1p3's resource link content item, with the optional `text` the spec allows."""

    _text: str | None = None

    def set_text(self, value: str) -> ResourceLinkItem:
        self._text = value
        return self

    def to_dict(self) -> dict[str, object]:
        item = super().to_dict()
        if self._text:
            item["text"] = self._text
        return item


def content_items(
    picks: t.Sequence[Pick], launch_url: str, with_line_items: bool = True
) -> list[ResourceLinkItem]:
    """One LtiResourceLink per micro-credential: a gradebook column each (unless the platform
    said it ignores line items), and custom parameters the launch maps back."""
    items = []
    for pick in picks:
        item = (
            ResourceLinkItem()
            .set_title(pick.title)
            .set_text(pick.competency)
            .set_url(launch_url)
            .set_custom_params({CUSTOM_CREDENTIAL: pick.key, CUSTOM_STACK: pick.stack_key})
        )
        if with_line_items:
            line_item = (
                LineItem()
                .set_label(pick.title)
                .set_score_maximum(SCORE_MAXIMUM)
                .set_resource_id(pick.key)
                .set_tag(LINE_ITEM_TAG)
            )
            item.set_lineitem(line_item)
        items.append(item)
    return items


def response_claims(
    registration: Registration, request: DeepLinkingRequest, items: t.Sequence[DeepLinkResource]
) -> dict[str, t.Any]:
    """The LtiDeepLinkingResponse claims: iss = client id, aud = the platform, the request's
    deployment, a fresh nonce, iat/exp, and `data` echoed unchanged when the request had it."""
    link = ToolDeepLink(registration, request.deployment_id, t.cast(t.Any, request.settings))
    claims = link.get_message_jwt(items)
    if not request.has_data:
        claims.pop(DATA_CLAIM, None)
    return claims


def response_jwt(
    registration: Registration, request: DeepLinkingRequest, items: t.Sequence[DeepLinkResource]
) -> str:
    """The signed response, with the `kid` of the key that signed it."""
    link = ToolDeepLink(registration, request.deployment_id, t.cast(t.Any, request.settings))
    return link.encode_jwt(response_claims(registration, request, items))


# -- what a resource link launch says about its micro-credential --------------------------------
@dataclass(frozen=True)
class LinkCredentialClaims:
    """The micro-credential a launched link names, and what the launch says of its line item."""

    credential_key: str
    stack_key: str | None
    has_line_item: bool
    # The line items container, when the platform lets the tool create line items there.
    lineitems_url: str | None


def link_credential_claims(body: dict[str, t.Any]) -> LinkCredentialClaims | None:
    """From a resource link launch whose custom claim names a micro-credential, else None."""
    if body.get(CLAIM + "message_type") != "LtiResourceLinkRequest":
        return None
    custom = body.get(CLAIM + "custom")
    if not isinstance(custom, dict):
        return None
    key = custom.get(CUSTOM_CREDENTIAL)
    if not isinstance(key, str) or not key.strip():
        return None
    stack = custom.get(CUSTOM_STACK)
    ags = body.get(AGS_CLAIM)
    ags = ags if isinstance(ags, dict) else {}
    scopes = ags.get("scope") if isinstance(ags.get("scope"), list) else []
    lineitems = ags.get("lineitems")
    can_create = LINEITEM_SCOPE in scopes and isinstance(lineitems, str) and bool(lineitems)
    return LinkCredentialClaims(
        credential_key=key.strip(),
        stack_key=stack.strip() if isinstance(stack, str) and stack.strip() else None,
        has_line_item=bool(ags.get("lineitem")),
        lineitems_url=lineitems if can_create else None,
    )
