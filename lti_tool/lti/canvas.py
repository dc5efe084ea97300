"""The Canvas developer-key JSON configuration, built from the tool's public base URL."""

from __future__ import annotations

from lti_tool.lti.launch import (
    LINEITEM_READONLY_SCOPE,
    LINEITEM_SCOPE,
    MEMBERSHIP_SCOPE,
    RESULT_SCOPE,
    SCORE_SCOPE,
)
from lti_tool.settings import Settings

# LTI Advantage scopes the tool uses: line items and scores (grades back), results (to read
# what the gradebook holds), and the roster (Names and Role Provisioning).
SCOPES = [
    LINEITEM_SCOPE,
    LINEITEM_READONLY_SCOPE,
    RESULT_SCOPE,
    SCORE_SCOPE,
    MEMBERSHIP_SCOPE,
]


def canvas_configuration(settings: Settings) -> dict:
    launch = settings.url("/lti/launch")
    host = settings.public_url.split("://", 1)[1].split("/", 1)[0]
    deep_linking = {
        "message_type": "LtiDeepLinkingRequest",
        "target_link_uri": launch,
        "text": settings.tool_name,
    }
    return {
        "title": settings.tool_name,
        "description": "Earn micro-credentials: submit evidence in your course, get it assessed "
        "by two independent external assessors, and receive grades and Open Badges.",
        "oidc_initiation_url": settings.url("/lti/login"),
        "target_link_uri": launch,
        "public_jwk_url": settings.url("/lti/jwks"),
        "scopes": SCOPES,
        "extensions": [
            {
                "domain": host.split(":")[0],
                "tool_id": "lti-tool-micro-credentials",
                "platform": "canvas.instructure.com",
                "privacy_level": "public",
                "settings": {
                    "text": settings.tool_name,
                    "placements": [
                        {
                            "placement": "link_selection",
                            **deep_linking,
                        },
                        {
                            "placement": "assignment_selection",
                            **deep_linking,
                        },
                        {
                            "placement": "course_navigation",
                            "message_type": "LtiResourceLinkRequest",
                            "target_link_uri": launch,
                            "text": settings.tool_name,
                            "default": "disabled",
                            "visibility": "admins",
                        },
                    ],
                },
            }
        ],
        "custom_fields": {
            "canvas_user_id": "$Canvas.user.id",
            "canvas_course_id": "$Canvas.course.id",
        },
    }
