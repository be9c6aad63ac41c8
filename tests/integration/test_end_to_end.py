"""HTTP -> Azurite queue -> processor -> Commerce emulator, through the local Functions host.

Each assertion on Commerce reads the emulator's own state and call counters, never the processor's
tally; each assertion on queues reads Azurite.
"""

from __future__ import annotations

import json
import time

import pytest

from tests.support.stack import b64decode, event
from tools import replay

pytestmark = pytest.mark.integration

ADA = dict(
    firstName="Ada",
    lastName="Lovelace",
    phone="+1 206 555 0100",
    isOptedInMarketing=True,
    address={"street": "1 Main St", "city": "Seattle", "state": "Washington", "postalCode": "98101", "country": "US"},
)


def customers_with(emulator, email: str) -> list[dict]:
    return [c for c in emulator.customers() if (c.get("Email") or "").lower() == email.lower()]


def test_new_customer_is_created_with_the_mapped_data(stack):
    response = stack.post(event(1, **ADA))
    assert response.status_code == 202, response.text
    assert response.json()["accepted"] == ["evt-1"]
    stack.wait()

    [customer] = customers_with(stack.emulator, "ada.lovelace@example.com")
    assert (customer["FirstName"], customer["LastName"]) == ("Ada", "Lovelace")
    assert customer["Phone"] == "+12065550100"
    [address] = customer["Addresses"]
    assert (address["ThreeLetterISORegionName"], address["State"], address["ZipCode"]) == ("USA", "WA", "98101")
    assert address["IsPrimary"] is True
    email_contact = [c for c in customer["Contacts"] if c["AddressTypeValue"] == 2]
    assert email_contact and email_contact[0]["IsOptedInMarketing"] is True
    calls = stack.emulator.calls()
    assert (calls["search"], calls["create"], calls["get"], calls["update"]) == (1, 1, 0, 0)
    assert stack.telemetry.outcomes() == ["created"]


def test_changed_fields_and_address_are_patched_in_place(stack):
    stack.post(event(1, **ADA))
    stack.wait()
    [before] = customers_with(stack.emulator, "ada.lovelace@example.com")

    moved = dict(ADA, lastName="King", address={**ADA["address"], "street": "2 Pine St", "postalCode": "98101-1234"})
    assert stack.post(event(2, occurred="2026-11-26T11:00:00+00:00", **moved)).status_code == 202
    stack.wait()

    [after] = customers_with(stack.emulator, "ada.lovelace@example.com")
    assert after["AccountNumber"] == before["AccountNumber"]
    assert after["LastName"] == "King"
    [address] = after["Addresses"]
    assert address["RecordId"] == before["Addresses"][0]["RecordId"]  # updated in place, not added
    assert (address["Street"], address["ZipCode"]) == ("2 Pine St", "98101-1234")
    calls = stack.emulator.calls()
    assert calls["update"] == 1 and calls["create"] == 1
    assert stack.telemetry.outcomes() == ["created", "updated"]


def test_an_unchanged_event_sends_no_patch(stack):
    stack.post(event(1, **ADA))
    stack.wait()
    stack.post(event(2, occurred="2026-11-26T11:00:00+00:00", **ADA))
    stack.wait()
    calls = stack.emulator.calls()
    assert calls["update"] == 0
    assert stack.telemetry.outcomes() == ["created", "unchanged"]


def test_several_exact_matches_update_the_lowest_record_id(stack):
    seeded = stack.emulator.seed(
        [
            {"AccountNumber": "C-200", "RecordId": 200, "Email": "dup@example.com", "FirstName": "Old"},
            {"AccountNumber": "C-100", "RecordId": 100, "Email": "DUP@example.com", "FirstName": "Old"},
        ]
    )
    assert len(seeded) == 2
    stack.post(event(1, email="dup@example.com", firstName="New"))
    stack.wait()
    by_account = {c["AccountNumber"]: c for c in stack.emulator.customers()}
    assert by_account["C-100"]["FirstName"] == "New"
    assert by_account["C-200"]["FirstName"] == "Old"
    assert stack.emulator.calls()["create"] == 0
    assert any("share this email" in r.getMessage() for r in stack.telemetry.records)


def test_prefix_search_near_misses_are_never_merged(stack):
    stack.emulator.seed([{"AccountNumber": "C-1", "Email": "anna@x-example.com", "FirstName": "Anna"}])
    stack.post(event(1, email="ann@x-example.com", firstName="Ann"))
    stack.wait()
    emails = sorted(c["Email"] for c in stack.emulator.customers())
    assert emails == ["ann@x-example.com", "anna@x-example.com"]
    assert customers_with(stack.emulator, "anna@x-example.com")[0]["FirstName"] == "Anna"


def test_an_async_customer_found_by_email_is_updated_not_created_again(stack):
    stack.emulator.configure(async_mode=True)
    stack.post(event(1, **ADA))
    stack.wait()
    [customer] = stack.emulator.customers()
    assert customer["IsAsyncCustomer"] is True
    stack.post(event(2, occurred="2026-11-26T11:00:00+00:00", **dict(ADA, firstName="Augusta")))
    stack.wait()
    [customer] = stack.emulator.customers()
    assert customer["FirstName"] == "Augusta"
    assert stack.emulator.calls()["create"] == 1


@pytest.mark.parametrize(
    "fault", ["throttle", "throttle_no_retry_after", "unavailable", "server_error", "drop", "hang"]
)
def test_each_transient_fault_is_retried_to_success(stack, fault):
    stack.emulator.set_faults(script=[{"operation": "create", "fault": fault}], hang_seconds=3)
    stack.post(event(1, **ADA))
    stack.wait(timeout=40)
    assert len(customers_with(stack.emulator, "ada.lovelace@example.com")) == 1
    outcomes = stack.telemetry.outcomes()
    assert outcomes[-1] == "created" and "retrying" in outcomes
    assert stack.deadletters() == []


def test_a_rotated_commerce_secret_is_retried_and_alerted_until_fixed_and_nothing_is_dead_lettered(stack):
    stack.emulator.configure(token="rotated-token")  # Commerce now refuses the app's token: 401
    stack.post(event(1, **ADA))
    deadline = time.monotonic() + 20
    while len(stack.telemetry.custom_events("CommerceAuthFailure")) < 2:  # at least one retry
        assert time.monotonic() < deadline, stack.telemetry.outcomes()
        time.sleep(0.1)
    stack.emulator.configure(token=stack.emulator.token)  # the operator fixes the secret
    stack.wait(timeout=30)
    outcomes = stack.telemetry.outcomes()
    assert outcomes[-1] == "created" and set(outcomes[:-1]) == {"retrying"}, outcomes
    assert len(customers_with(stack.emulator, "ada.lovelace@example.com")) == 1
    assert stack.deadletters() == []


def test_an_email_change_and_the_next_event_for_the_new_address_leave_one_customer(stack):
    stack.post(event(1, **ADA))
    stack.wait()
    new = "ada.king@example.com"
    # The change and the sender's next event for the new address, in one batch: processed concurrently,
    # in either order.
    change = event(
        2, email=new, occurred="2026-11-26T11:00:00+00:00", **{**ADA, "previousEmail": "ada.lovelace@example.com"}
    )
    after = event(3, email=new, occurred="2026-11-26T11:01:00+00:00", **{**ADA, "lastName": "King"})
    assert stack.post([change, after]).status_code == 202
    stack.wait()
    [customer] = stack.emulator.customers()
    assert (customer["Email"], customer["LastName"]) == (new, "King")
    assert stack.emulator.calls()["create"] == 1 and stack.deadletters() == []


def test_commit_then_fail_does_not_create_a_duplicate(stack):
    stack.emulator.set_faults(script=[{"operation": "create", "fault": "commit_then_fail"}])
    stack.post(event(1, **ADA))
    stack.wait()
    assert len(customers_with(stack.emulator, "ada.lovelace@example.com")) == 1
    calls = stack.emulator.calls()
    assert calls["create"] == 1  # the retry found the committed customer by search
    assert stack.telemetry.outcomes() == ["retrying", "unchanged"]


def test_commerce_validation_error_is_dead_lettered_at_once_with_its_reason(stack):
    stack.emulator.configure(required_on_create=["Email", "TaxGroup"])
    stack.post(event(1, **ADA))
    stack.wait()
    [letter] = stack.deadletters()
    assert letter.reason == "commerce_rejected"
    assert letter.error_resource_id == "Microsoft_Dynamics_Commerce_Runtime_RequiredValueNotFound"
    assert letter.attempts == 1
    assert letter.event_id == "evt-1"
    assert "ada.lovelace" not in letter.message
    assert stack.telemetry.outcomes() == ["dead_lettered"]
    assert stack.telemetry.custom_events("CustomerEventDeadLettered")


def test_a_transient_failure_is_retried_by_new_messages_until_the_maximum_age(stack_factory):
    stack = stack_factory(
        settings={"RETRY_MAX_AGE_SECONDS": "3", "RETRY_BASE_DELAY_SECONDS": "1", "RETRY_MAX_DELAY_SECONDS": "1"}
    )
    stack.emulator.set_faults(rates={"unavailable": 1.0}, operations=["search"])
    started = time.monotonic()
    stack.post(event(1, **ADA))
    stack.wait(timeout=30)
    [letter] = stack.deadletters()
    assert letter.reason == "retries_exhausted:commerce_server"
    outcomes = stack.telemetry.custom_events("CustomerSyncOutcome")
    # Each attempt is a new message (the host's dequeue count never climbs), one second apart.
    assert [r.attempt for r in outcomes] == list(range(1, len(outcomes) + 1))
    assert [r.outcome for r in outcomes] == ["retrying"] * (len(outcomes) - 1) + ["dead_lettered"]
    assert 3 <= len(outcomes) <= 6 and letter.attempts == len(outcomes)
    assert time.monotonic() - started >= 3
    assert stack.emulator.calls()["search"] == len(outcomes)


def test_a_message_the_processor_cannot_finish_goes_to_poison_then_to_dead_letters(stack_factory):
    """When even the dead-letter write fails (storage outage), the host's poison queue catches the
    message after maxDequeueCount, and the poison collector keeps it as a dead letter."""
    stack = stack_factory(poison=False, settings={"RETRY_MAX_AGE_SECONDS": "1"})
    stack.emulator.set_faults(rates={"unavailable": 1.0}, operations=["search"])
    real_put = stack.runtime.deadletters.put

    def failing_put(letter):
        raise ConnectionError("table storage unavailable")

    stack.runtime.deadletters.put = failing_put
    stack.post(event(1, **ADA))
    stack.wait(timeout=30)
    poison = stack.runtime.settings.poison_queue
    [raw] = stack.raw_queue_messages(poison)
    assert json.loads(b64decode(raw))["event"]["eventId"] == "evt-1"  # base64 on the wire, like the host
    assert stack.raw_queue_messages(stack.runtime.settings.events_queue) == []

    stack.runtime.deadletters.put = real_put
    stack.host.stop()
    import function_app
    from devhost.local_host import LocalHost
    from shared.core import telemetry_names as names

    host = LocalHost(
        function_app.app,
        host_json=stack.host_json,
        env=stack.env,
        functions=[names.FUNCTION_POISON],
        storage_connection=stack.env["AzureWebJobsStorage"],
    )
    host.start()
    try:
        host.wait_idle(20)
    finally:
        host.stop()
    [letter] = stack.deadletters()
    assert letter.reason == "max_dequeue_exceeded" and letter.event_id == "evt-1"


def test_replay_after_a_fix_brings_the_event_to_success(stack):
    stack.emulator.configure(required_on_create=["Email", "TaxGroup"])
    stack.post(event(1, **ADA))
    stack.wait()
    assert [d.reason for d in stack.deadletters()] == ["commerce_rejected"]

    stack.emulator.configure(required_on_create=["Email"])  # the fix
    listing = _run_replay(["list"])
    assert "commerce_rejected" in listing and "evt-1" in listing and "ada.lovelace" not in listing
    output = _run_replay(["replay", "--reason", "commerce_rejected"])
    assert '"replayed": 1' in output
    stack.wait()
    assert len(customers_with(stack.emulator, "ada.lovelace@example.com")) == 1
    assert stack.deadletters() == []


def _run_replay(args: list[str]) -> str:
    import io

    out = io.StringIO()
    assert replay.main(args, out=out) == 0
    return out.getvalue()


def test_health_reports_version_and_complete_settings(stack):
    import requests

    from shared import __version__

    body = requests.get(f"{stack.host.http_url}/health", timeout=5).json()
    assert body == {"status": "ok", "version": __version__, "settingsComplete": True, "problems": []}


def test_queued_messages_are_base64_envelopes_that_never_expire(stack_factory):
    stack = stack_factory(queues=False)
    assert stack.post([event(1, **ADA), event(2, email="grace@example.com")]).status_code == 202
    from azure.storage.queue import QueueClient

    raw = QueueClient.from_connection_string(stack.env["AzureWebJobsStorage"], stack.runtime.settings.events_queue)
    messages = list(raw.peek_messages(max_messages=32))
    assert len(messages) == 2
    for message in messages:
        body = json.loads(b64decode(message.content))  # the trigger's default messageEncoding
        assert body["v"] == 1 and body["correlationId"] and body["ingestedAt"]
        assert body["event"]["eventId"] in {"evt-1", "evt-2"}
        assert message.expires_on.year == 9999  # time_to_live=-1: never expires
        assert len(message.content) < 64 * 1024
    first = next(
        json.loads(b64decode(m.content))
        for m in messages
        if json.loads(b64decode(m.content))["event"]["eventId"] == "evt-1"
    )
    assert first["event"]["phone"] == "+12065550100"
    assert first["event"]["address"]["country"] == "USA"
