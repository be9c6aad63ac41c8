"""The OpenAPI 3.1 document of the HTTP API, generated from the pydantic models of shared.core.contract
(whose customer and address schemas are built from the field table of shared.core.fields).

python -m tools.openapi            print it
python -m tools.openapi --write    write docs/openapi.json
python -m tools.openapi --check    exit 1 when docs/openapi.json differs from the models
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from pydantic.json_schema import models_json_schema

from shared.core.contract import (
    Accepted,
    CustomerEvent,
    EventBatch,
    Health,
    MultiStatus,
    Problem,
)
from shared.core.sources.models import WebhookAnswer, WebhookProblem

DOCUMENT = Path(__file__).resolve().parent.parent / "docs" / "openapi.json"
API_VERSION = "1.0.0"
_REF = "#/components/schemas/{model}"


def _schemas() -> dict[str, Any]:
    _, top = models_json_schema(
        [(m, "validation") for m in (CustomerEvent, EventBatch)]
        + [(m, "serialization") for m in (Accepted, MultiStatus, Problem, Health, WebhookAnswer, WebhookProblem)],
        ref_template=_REF,
    )
    return dict(sorted(top["$defs"].items()))


def _json(schema_name: str, description: str, media: str = "application/json") -> dict[str, Any]:
    return {"description": description, "content": {media: {"schema": {"$ref": _REF.format(model=schema_name)}}}}


def _problem(description: str) -> dict[str, Any]:
    return _json("Problem", description, "application/problem+json")


def build_document() -> dict[str, Any]:
    event_ref = {"$ref": _REF.format(model="CustomerEvent")}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "commerce-customer-sync",
            "version": API_VERSION,
            "summary": "Customer events in, Dynamics 365 Commerce customers out.",
            "description": "Events are validated, queued and upserted into Commerce by email. "
            "See docs/event-contract.md for the semantics of each field.",
        },
        "servers": [{"url": "http://localhost:7071", "description": "local Functions host"}],
        "security": [{"functionKeyHeader": []}, {"functionKeyQuery": []}],
        "paths": {
            "/api/customers/events": {
                "post": {
                    "operationId": "postCustomerEvents",
                    "summary": "Submit one customer event or a batch",
                    "description": "The body is one event, an array of events, or "
                    "{\"events\": [...]}. Each event is validated on its own: valid "
                    "events are queued even when others are rejected (207).",
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {
                                    "oneOf": [
                                        event_ref,
                                        {"type": "array", "items": event_ref, "minItems": 1},
                                        {"$ref": _REF.format(model="EventBatch")},
                                    ]
                                }
                            }
                        },
                    },
                    "responses": {
                        "202": _json("Accepted", "Every event was valid and is queued."),
                        "207": _json(
                            "MultiStatus", "Some events were queued, others rejected; one result per event, in order."
                        ),
                        "400": _problem("Malformed request (not JSON, wrong shape, too deep, empty)."),
                        "422": _problem(
                            "Every event was rejected; errors lists each field of each event. Nothing was queued."
                        ),
                        "401": {"description": "Missing or wrong function key."},
                        "413": _problem(
                            "Body larger than INGEST_MAX_BODY_BYTES or more events than INGEST_MAX_EVENTS."
                        ),
                        "415": _problem("Content type is not application/json."),
                        "500": _problem(
                            "Unexpected failure; quote the correlationId. Events "
                            "may have been queued before it: resending is safe."
                        ),
                        "503": _problem(
                            "The queue is unavailable; queuedEventIds lists the "
                            "events queued before the failure. Retry the others."
                        ),
                    },
                }
            },
            "/api/webhooks/{source}": {
                "post": {
                    "operationId": "postWebhook",
                    "summary": "Receive a marketing system's own signed webhook",
                    "description": "The body is the sender's own payload, verified over its raw bytes "
                    "with the source's signature scheme before it is parsed: shopify "
                    "(X-Shopify-Hmac-Sha256), klaviyo (Klaviyo-Signature), hubspot "
                    "(X-HubSpot-Signature-v3), standard (Standard Webhooks "
                    "webhook-signature, body = the canonical event contract), or a "
                    "mapping file in WEBHOOK_MAPPINGS_DIR. docs/sources.md describes each "
                    "source. A data problem is answered 200: the refused event is kept "
                    "as a dead letter.",
                    "parameters": [
                        {
                            "name": "source",
                            "in": "path",
                            "required": True,
                            "description": "shopify, klaviyo, hubspot, standard, or the name of a mapping file.",
                            "schema": {"type": "string", "pattern": "^[a-z][a-z0-9-]{0,31}$"},
                        }
                    ],
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {"description": "The sender's payload, as the sender documents it."}
                            }
                        },
                    },
                    "responses": {
                        "200": _json(
                            "WebhookAnswer",
                            "Authentic and durably stored, or received "
                            "before (duplicate), or a topic that is not applied (ignored).",
                        ),
                        "401": _json(
                            "WebhookProblem",
                            "Unknown source, no secret configured, or the "
                            "signature is missing, wrong or expired (or the function key is "
                            "missing). Nothing was stored.",
                            "application/problem+json",
                        ),
                        "409": _problem(
                            "The same delivery is being stored by another request; "
                            "Retry-After says when to send it again."
                        ),
                        "413": _problem("Body larger than INGEST_MAX_BODY_BYTES."),
                        "500": _problem("Unexpected failure; quote the correlationId. Resending is safe."),
                        "503": _problem(
                            "Storage unavailable or settings incomplete; send the delivery again after Retry-After."
                        ),
                    },
                }
            },
            "/api/health": {
                "get": {
                    "operationId": "getHealth",
                    "security": [],
                    "summary": "Liveness and settings completeness",
                    "responses": {
                        "200": _json("Health", "The app is up and its settings are complete."),
                        "503": _json("Health", "Settings are incomplete; problems names them."),
                    },
                }
            },
        },
        "components": {
            "schemas": _schemas(),
            "securitySchemes": {
                "functionKeyHeader": {
                    "type": "apiKey",
                    "in": "header",
                    "name": "x-functions-key",
                    "description": "Azure Functions function key.",
                },
                "functionKeyQuery": {
                    "type": "apiKey",
                    "in": "query",
                    "name": "code",
                    "description": "Azure Functions function key.",
                },
            },
        },
    }


def render() -> str:
    return json.dumps(build_document(), indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tools.openapi", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--write", action="store_true", help=f"write {DOCUMENT.name}")
    group.add_argument("--check", action="store_true", help="exit 1 if the committed file differs")
    args = parser.parse_args(argv)
    text = render()
    if args.write:
        DOCUMENT.parent.mkdir(parents=True, exist_ok=True)
        DOCUMENT.write_text(text, encoding="utf-8")
        print(f"wrote {DOCUMENT}")
        return 0
    if args.check:
        current = DOCUMENT.read_text(encoding="utf-8") if DOCUMENT.exists() else ""
        if current != text:
            print(f"{DOCUMENT} is out of date: run python -m tools.openapi --write", file=sys.stderr)
            return 1
        print(f"{DOCUMENT} is up to date")
        return 0
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
