"""``POST /api/webhooks/{source}``: verify, deduplicate, translate, then the ingest pipeline.

The order is the point:

1. The source must be known and have a secret; the signature is checked over the raw bytes before
   the body is parsed. Any failure: 401 problem document, a ``WebhookRejected`` event with the reason,
   nothing stored.
2. The delivery is claimed in the delivery table by its idempotency key. Already done: 200
   ``duplicate``, nothing queued again. Claimed by a request still running: 409 with ``Retry-After``,
   so the sender comes back once that one has finished (or failed).
3. The adapter translates the body into canonical events; the sender-id map fills in an email the
   payload lacks and turns an email change at the sender into ``previousEmail``.
4. Events are validated with the source's policy and queued by the same code as the canonical route.
   An event refused for its data is kept as a dead letter (reason ``webhook_rejected``, its problems
   by pointer and code) and counted, and the delivery is still answered 200: a data problem is never
   bounced to a webhook sender.
5. Only once everything is stored (queue, dead letters, sender-id map) is the claim completed and 200
   answered. If storage fails, the claim is released and 503 with ``Retry-After`` answered, so the
   sender's retry does the work again; events queued before the failure are queued again then, which
   the deterministic event ids make harmless (the ledger skips them as ``duplicate``).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from shared.core.dead_letters import DeadLetter
from shared.core.failures import classify_failure
from shared.core.normalise.datetimes import parse_aware
from shared.core.normalise.email import normalise_email
from shared.core.normalise.invalid import Invalid
from shared.core.privacy import email_hash, mask_pointer
from shared.core.sources.base import (
    CanonicalEvent,
    Erasure,
    Translation,
    Unreadable,
    WebhookRequest,
    digest,
    parse_json,
)
from shared.core.sources.config import SOURCE_NAME, WebhookConfig
from shared.core.sources.models import AnswerStatus, WebhookAnswer
from shared.core.sources.registry import SourceRegistry
from shared.core.sources.signatures import Headers, Reason, SignatureRejected
from shared.core.validation import EventResult, validate_batch
from shared.usecases.erasure import ErasureBusy, ErasureDeps, erase_customer
from shared.usecases.ingest import HttpResult, IngestDeps, problem, send_valid, wrap_valid

if TYPE_CHECKING:  # adapters are injected; only their types are named here
    from shared.adapters.dead_letter_table import DeadLetterStore
    from shared.adapters.sender_tables import Claim, DeliveryStore, Identity, SenderIdentityStore


log = logging.getLogger("customer_sync.webhooks")

RETRY_AFTER_SECONDS = 30
IN_FLIGHT_RETRY_AFTER_SECONDS = 10
REASON_REJECTED = "webhook_rejected"
REASON_UNREADABLE = "webhook_unreadable"
REASON_ERASURE = "erasure_requested"
MAX_STORED_BODY = 30_000  # characters of an unreadable body kept for operators (a table cell holds 32K)
_TOPIC = re.compile(r"^[A-Za-z0-9_./:-]{1,64}$")
IDENTITY_FIELDS = {"email", "previousEmail"}


@dataclass
class WebhookDeps:
    ingest: IngestDeps
    config: WebhookConfig
    registry: SourceRegistry
    deliveries: DeliveryStore
    identities: SenderIdentityStore
    deadletters: DeadLetterStore
    erasure: ErasureDeps | None = None  # None: erasure requests are only recorded


class _Busy(Exception):
    def __init__(self, retry_after: float):
        super().__init__("busy")
        self.retry_after = retry_after


class _StorageFailed(Exception):
    def __init__(self, error: Exception, step: str):
        super().__init__(step)
        self.error, self.step = error, step


def _safe_topic(topic: str | None) -> str:
    return topic if topic and _TOPIC.match(topic) else "(other)"


def _answer(status: AnswerStatus, source: str, correlation_id: str, **fields: Any) -> HttpResult:
    body = WebhookAnswer(status=status, source=source, correlationId=correlation_id, **fields)
    return HttpResult(200, body.model_dump())


def _match_key(email: Any) -> str | None:
    try:
        return normalise_email(email)[1]
    except (Invalid, TypeError):
        return None


def _moment(value: Any) -> datetime | None:
    try:
        return parse_aware(value)
    except (Invalid, TypeError, ValueError):
        return None


class _Delivery:
    """One authentic delivery being stored."""

    def __init__(self, deps: WebhookDeps, source: str, request: WebhookRequest, correlation_id: str, now: datetime):
        self.deps, self.source, self.request = deps, source, request
        self.correlation_id, self.now = correlation_id, now
        self.telemetry = deps.ingest.telemetry
        self.hash_key = deps.ingest.settings.email_hash_key
        self.options = deps.config.options_for(source)

    # --- dead letters -----------------------------------------------------------------------------
    def _hash_of(self, email: Any) -> str:
        key = _match_key(email)
        return email_hash(key, self.hash_key) if key else ""

    def _dead_letter(self, *, event_id: str, email: Any, reason: str, message: str, envelope: str) -> None:
        letter = DeadLetter(
            email_hash=self._hash_of(email),
            event_id=event_id,
            reason=reason,
            message=message,
            error_resource_id=None,
            status=None,
            attempts=0,
            first_seen_at=self.now,
            dead_lettered_at=self.now,
            envelope=envelope,
        )
        try:
            self.deps.deadletters.put(letter)
        except Exception as error:  # noqa: BLE001 - reported as a 503 so the sender retries
            raise _StorageFailed(error, "dead letter") from None
        self.telemetry.dead_lettered(
            event_id=event_id,
            email_hash=letter.email_hash or None,
            reason=reason,
            error_resource_id=None,
            correlation_id=self.correlation_id,
            attempts=0,
        )

    def _envelope(self, topic: str | None, **content: Any) -> str:
        return json.dumps(
            {"v": "webhook", "source": self.source, "topic": topic, **content},
            ensure_ascii=False,
            separators=(",", ":"),
        )

    def unreadable(self, reason: str, topic: str | None = None) -> HttpResult:
        text = self.request.body.decode("utf-8", errors="replace")[:MAX_STORED_BODY]
        self._dead_letter(
            event_id=f"{self.source}:{digest(self.request.body)}",
            email=None,
            reason=REASON_UNREADABLE,
            envelope=self._envelope(topic, body=text),
            message=f"{self.source}: an authentic delivery could not be read ({reason}); "
            "nothing was applied. The body is kept in the Envelope column.",
        )
        log.warning("webhook %s: authentic delivery unreadable (%s); kept as a dead letter", self.source, reason)
        self.telemetry.webhook_delivery(self.source, "unreadable")
        return _answer("unreadable", self.source, self.correlation_id)

    # --- the sender-id map ------------------------------------------------------------------------
    def _known(self, sender_id: str) -> Identity | None:
        try:
            return self.deps.identities.get(self.source, sender_id)
        except Exception as error:  # noqa: BLE001
            raise _StorageFailed(error, "sender-id map read") from None

    def _resolve(self, item: CanonicalEvent) -> Identity | None:
        """Fill in the email from the sender-id map when the payload has none; turn a changed email into
        ``previousEmail`` for an event newer than the one that set the known email; and give an older
        event that arrives late (Shopify's update can come before its create) the known, newer email, so
        it is judged by that customer's ledger entry instead of creating a customer under an address the
        sender has since replaced."""
        raw = item.raw
        customer = raw.get("customer") if isinstance(raw, dict) else None
        if not item.sender_id or not isinstance(raw, dict) or not isinstance(customer, dict):
            return None
        known = self._known(item.sender_id)
        if known is None or not known.email:
            return known
        if customer.get("email") is None:
            customer["email"] = known.email
            return known
        occurred = _moment(raw.get("occurredAt"))
        newer = occurred is not None and (known.occurred_at is None or occurred >= known.occurred_at)
        current = _match_key(customer["email"])
        if "previousEmail" in customer or current is None or current == _match_key(known.email):
            return known
        if newer:
            customer["previousEmail"] = known.email
        elif occurred is not None:
            customer["email"] = known.email
        return known

    def _remember(
        self, items: list[CanonicalEvent], results: list[EventResult], queued: set[str], known: list[Identity | None]
    ) -> None:
        for item, result, identity in zip(items, results, known, strict=False):
            event = result.event
            if not item.sender_id or event is None or event.event_id not in queued:
                continue
            try:
                self.deps.identities.remember(
                    self.source, item.sender_id, event.email, event.occurred_at, identity, email_hash=event.email_hash
                )
            except Exception as error:  # noqa: BLE001
                raise _StorageFailed(error, "sender-id map write") from None

    # --- erasure ----------------------------------------------------------------------------------
    def erase(self, erasure: Erasure) -> None:
        """The sender's record of the customer goes at once; with a valid email, everything the
        integration holds for it is erased (``shared.usecases.erasure``: ledger tombstone, dead letters, poison
        copies); then one note without personal data is left for the operator, who erases the Commerce
        customer in headquarters."""
        forgot = False
        if erasure.sender_id:
            try:
                forgot = self.deps.identities.forget(self.source, erasure.sender_id)
            except Exception as error:  # noqa: BLE001
                raise _StorageFailed(error, "sender-id map delete") from None
        done = "The sender-id record " + ("was deleted" if forgot else "did not exist")
        key: str | None
        try:
            _, key = normalise_email(erasure.email)
        except (Invalid, TypeError):
            key = None
        if key is not None and self.deps.erasure is not None:
            hashed = email_hash(key, self.hash_key)
            try:
                # The other senders' records of the address go by its hash (no address in a query).
                report = erase_customer(hashed, self.deps.erasure)
                self.deps.identities.forget_email(hashed)
            except ErasureBusy as busy:
                raise _Busy(busy.retry_after) from None
            except Exception as error:  # noqa: BLE001 - every step is idempotent: the retry runs it again
                raise _StorageFailed(error, "erasure") from None
            account = f" (Commerce account {report.account_number})" if report.account_number else ""
            done += (
                f"; the sync ledger entry is forgotten, {report.dead_letters} dead letter(s) and "
                f"{report.poison_messages} poison message(s) deleted. Erase the Commerce customer"
                f"{account} in headquarters"
            )
        else:
            done += (
                "; the email is missing or invalid, so nothing else could be found: erase the "
                "Commerce customer and its ledger entry by hand (python -m tools.customer --forget)"
            )
        subject = erasure.sender_id or key or digest(self.request.body)
        self._dead_letter(
            event_id=f"{self.source}:erasure:{digest(self.source, subject)}",
            email=erasure.email,
            reason=REASON_ERASURE,
            envelope="",
            message=f"{self.source} {erasure.topic}: the sender asks for this customer's personal data to "
            f"be erased. {done} (docs/sources.md#erasure).",
        )

    # --- the events -------------------------------------------------------------------------------
    def store(self, translation: Translation, claim: Claim) -> HttpResult:
        for erasure in translation.erasures:
            self.erase(erasure)
        items: list[CanonicalEvent] = []
        ignored = [_safe_topic(t) for t in translation.ignored]
        for item in translation.events:
            customer = item.raw.get("customer") if isinstance(item.raw, dict) else None
            if self.source != "standard" and isinstance(customer, dict) and not set(customer) - IDENTITY_FIELDS:
                ignored.append(_safe_topic(item.topic) + " (nothing to apply)")
                continue
            items.append(item)
        known = [self._resolve(item) for item in items]

        settings = self.deps.ingest.settings
        results = validate_batch(
            [i.raw for i in items],
            now=self.now,
            settings=self.options.mapping(settings.mapping),
            hash_key=self.hash_key,
        )
        if self.options.create_defaults is not None:
            results = [
                r
                if r.event is None
                else r.model_copy(
                    update={"event": r.event.model_copy(update={"create_defaults": self.options.create_defaults})}
                )
                for r in results
            ]
        envelopes, oversized = wrap_valid(results, self.now, self.correlation_id)

        rejected: list[str] = []
        for item, result in zip(items, results, strict=False):
            if result.index in envelopes:
                continue
            problems = result.errors + oversized.get(result.index, [])
            event_id = result.event_id or f"{self.source}:{digest(self.request.body, str(result.index))}"
            customer = item.raw.get("customer") if isinstance(item.raw, dict) else None
            email = customer.get("email") if isinstance(customer, dict) else None
            listed = "; ".join(f"{mask_pointer(p.pointer) or '/'} {p.code}" for p in problems[:20])
            hint = (
                " (the sender gave no email and none is known for its customer id yet)"
                if email is None and item.sender_id
                else ""
            )
            self._dead_letter(
                event_id=event_id,
                email=email,
                reason=REASON_REJECTED,
                envelope=self._envelope(item.topic, event=item.raw),
                message=f"{self.source} {_safe_topic(item.topic)}: refused: {listed}{hint}",
            )
            rejected.append(event_id)
            log.warning(
                "webhook %s: event %s refused for its data (%s); kept as a dead letter", self.source, event_id, listed
            )

        queued, failure = send_valid(results, envelopes, self.deps.ingest, self.correlation_id)
        if failure is not None:
            raise _StorageFailed(failure, "queue")
        self._remember(items, results, set(queued), known)

        telemetry = self.telemetry
        telemetry.ingested("queued", len(queued))
        telemetry.ingested("rejected", len(rejected))
        outcome: AnswerStatus = "accepted" if queued or rejected or translation.erasures else "ignored"
        telemetry.webhook_delivery(self.source, outcome)
        try:
            self.deps.deliveries.complete(claim, self.now, queued=len(queued), rejected=len(rejected), outcome=outcome)
        except Exception as error:  # noqa: BLE001 - stored already: a redelivery is then a harmless duplicate
            log.warning(
                "webhook %s: delivery stored but not recorded as done (%s): a redelivery will be "
                "queued again and skipped by the ledger",
                self.source,
                classify_failure(error).reason,
            )
        log.info(
            "webhook %s: queued %d event(s), refused %d, ignored %d",
            self.source,
            len(queued),
            len(rejected),
            len(ignored),
        )
        return _answer(
            outcome,
            self.source,
            self.correlation_id,
            accepted=queued,
            rejected=rejected,
            ignored=ignored,
            erasures=len(translation.erasures),
        )


def _rejected(deps: WebhookDeps, source: str | None, reason: Reason, correlation_id: str) -> HttpResult:
    shown = source or "unknown"
    deps.ingest.telemetry.webhook_rejected(source=shown, reason=reason, correlation_id=correlation_id)
    log.warning("webhook refused: source %s, %s", shown, reason)
    return problem(
        401,
        "Unauthorized",
        "The delivery could not be authenticated for this source; nothing was stored.",
        correlation_id,
        reason=reason,
    )


def _storage_failed(deps: WebhookDeps, source: str, failed: _StorageFailed, correlation_id: str) -> HttpResult:
    failure = classify_failure(failed.error)
    log.error(
        "webhook %s: %s failed: %s (%s); answered 503 so the sender retries",
        source,
        failed.step,
        failure.reason,
        failure.message,
    )
    deps.ingest.telemetry.ingest_failure(status=503, reason=failure.reason, correlation_id=correlation_id)
    deps.ingest.telemetry.webhook_delivery(source, "failed")
    result = problem(
        503, "Storage unavailable", "The delivery could not be stored; send it again later.", correlation_id
    )
    result.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return result


def handle_webhook(
    source: str, method: str, url: str, headers: Mapping[str, str], body: bytes, correlation_id: str, deps: WebhookDeps
) -> HttpResult:
    now = deps.ingest.clock()
    named = source.lower() if isinstance(source, str) and SOURCE_NAME.match(source.lower()) else None
    adapter = deps.registry.get(named) if named else None
    if adapter is None:
        return _rejected(deps, None, "unknown_source", correlation_id)
    source = adapter.name
    secrets = deps.config.secrets.get(source, ())
    if not secrets:
        return _rejected(deps, source, "no_secret", correlation_id)
    limit = deps.ingest.settings.ingest_max_body_bytes
    if len(body) > limit:
        deps.ingest.telemetry.webhook_delivery(source, "too_large")
        return problem(413, "Content Too Large", f"the body exceeds {limit} bytes", correlation_id)

    request = WebhookRequest(source=source, method=method, url=url, headers=Headers(headers), body=body)
    options = deps.config.options_for(source)
    try:
        verified = adapter.verify(request, secrets, now, options, deps.config.public_base_url)
    except SignatureRejected as refused:
        return _rejected(deps, source, refused.reason, correlation_id)

    delivery = _Delivery(deps, source, request, correlation_id, now)
    claim: Claim | None = None
    try:
        try:
            data = parse_json(body)
            check = getattr(adapter, "check_body", None)
            if check is not None:
                check(request, data)
            key = adapter.delivery_key(request, verified, data)
        except Unreadable as unreadable:
            key, data = f"unreadable:{digest(body)}", None
            reason: str | None = unreadable.reason
        else:
            reason = None
        try:
            claim = deps.deliveries.claim(source, key, now)
        except Exception as error:  # noqa: BLE001
            raise _StorageFailed(error, "delivery claim") from None
        if claim.state == "duplicate":
            deps.ingest.telemetry.webhook_delivery(source, "duplicate")
            log.info("webhook %s: delivery received before; acknowledged, nothing queued", source)
            return _answer("duplicate", source, correlation_id)
        if claim.state == "in_flight":
            deps.ingest.telemetry.webhook_delivery(source, "in_flight")
            result = problem(
                409,
                "Delivery in progress",
                "The same delivery is being stored by another request; send it again shortly.",
                correlation_id,
            )
            result.headers["Retry-After"] = str(IN_FLIGHT_RETRY_AFTER_SECONDS)
            return result
        if reason is not None:
            answer = delivery.unreadable(reason)
        else:
            try:
                translation = adapter.translate(request, verified, data)
            except Unreadable as unreadable:
                answer = delivery.unreadable(unreadable.reason)
            else:
                limit = deps.ingest.settings.ingest_max_events
                if len(translation.events) > limit:
                    _release_quietly(deps, claim, source)
                    deps.ingest.telemetry.webhook_delivery(source, "too_large")
                    return problem(413, "Content Too Large", f"at most {limit} events per delivery", correlation_id)
                if not translation.events and not translation.erasures:
                    ignored = [_safe_topic(t) for t in translation.ignored]
                    deps.ingest.telemetry.webhook_delivery(source, "ignored")
                    log.info("webhook %s: topic(s) %s acknowledged and ignored", source, ", ".join(ignored))
                    answer = _answer("ignored", source, correlation_id, ignored=ignored)
                    _complete_quietly(deps, claim, now, source, "ignored")
                    return answer
                return delivery.store(translation, claim)
        _complete_quietly(deps, claim, now, source, "unreadable")
        return answer
    except SignatureRejected as refused:  # a body check (Klaviyo's webhook id) after parsing
        _release_quietly(deps, claim, source)
        return _rejected(deps, source, refused.reason, correlation_id)
    except _StorageFailed as failed:
        _release_quietly(deps, claim, source)
        return _storage_failed(deps, source, failed, correlation_id)
    except _Busy as busy:  # an erasure while a worker writes this customer to Commerce
        _release_quietly(deps, claim, source)
        deps.ingest.telemetry.webhook_delivery(source, "in_flight")
        result = problem(
            409,
            "Customer being written",
            "The customer is being written to Commerce; send the erasure request again shortly.",
            correlation_id,
        )
        result.headers["Retry-After"] = str(max(1, int(busy.retry_after) + 1))
        return result
    except Exception:
        _release_quietly(deps, claim, source)
        raise


def _complete_quietly(deps: WebhookDeps, claim: Claim, now: datetime, source: str, outcome: str) -> None:
    try:
        deps.deliveries.complete(claim, now, queued=0, rejected=0, outcome=outcome)
    except Exception as error:  # noqa: BLE001 - nothing was queued: a redelivery is harmless
        log.warning("webhook %s: could not record the delivery as done (%s)", source, classify_failure(error).reason)


def _release_quietly(deps: WebhookDeps, claim: Claim | None, source: str) -> None:
    if claim is None or claim.state != "new":
        return
    try:
        deps.deliveries.release(claim)
    except Exception as error:  # noqa: BLE001 - the stale claim is taken over after CLAIM_SECONDS
        log.warning("webhook %s: could not release the delivery claim (%s)", source, classify_failure(error).reason)
