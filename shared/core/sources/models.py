"""The answers of ``POST /api/webhooks/{source}``, as published in docs/openapi.json."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from shared.core.contract import Problem
from shared.core.sources.signatures import Reason

AnswerStatus = Literal["accepted", "duplicate", "ignored", "unreadable"]


class WebhookAnswer(BaseModel):
    """2xx: the delivery is authentic and durably stored (or was already). Data problems are answered
    2xx too: each refused event is kept as a dead letter with its reason, never bounced to the
    sender (a sender that gets 4xx retries, and Shopify then deletes the subscription)."""

    status: AnswerStatus = Field(
        description="accepted: events queued (and/or refused ones dead-lettered); duplicate: this "
        "delivery was received before, nothing queued again; ignored: a topic this "
        "integration does not apply; unreadable: the authentic body is not what the sender "
        "documents, kept as a dead letter."
    )
    source: str
    accepted: list[str] = Field(default_factory=list, description="Event ids queued.")
    rejected: list[str] = Field(
        default_factory=list,
        description="Event ids refused for their data: "
        "dead-lettered with the reason (tools.replay list --reason "
        "webhook_rejected).",
    )
    ignored: list[str] = Field(default_factory=list, description="Topics acknowledged and not applied.")
    erasures: int = Field(0, description="Erasure requests recorded (Shopify customers/redact).")
    correlationId: str


class WebhookProblem(Problem):
    """401: the delivery is not authentic for this source (or the source is unknown, or has no secret);
    nothing was stored. ``reason`` says which check failed, never a header, digest or secret."""

    reason: Reason | None = Field(None, description="Which check refused the delivery.")
