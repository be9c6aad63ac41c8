"""One customer's story: what the integration knows and did about one email, or its erasure.

    python -m tools.customer [--settings FILE] [--json]       # the email is asked for
    python -m tools.customer --forget [--yes]                  # erase what the integration holds
    echo "$EMAIL" | python -m tools.customer                   # or read from standard input

The email is read from a prompt (or the first line of standard input), never from the command line,
so it does not land in shell history or process listings. It is hashed with EMAIL_HASH_KEY as the app
does; the output names it by hash only.

Shown: the ledger entry (state, Commerce account, the last event applied and per field group, lease),
the Commerce customer (GET of the ledger's account, else the exact email search: every match), dead
letters with their reasons (masked messages), and the Application Insights query (KQL) of the email's
recent outcomes.

--forget: the ledger entry becomes a ``forgotten`` tombstone (ordering key and recent event ids only),
dead letters and poison-queue copies of the email's events are deleted, webhook senders' records of it
too; the erasure is logged by email hash only (``shared.usecases.erasure.erase_customer``, the same code as a
sender's erasure request). The Commerce customer is not deleted: erase it in headquarters.
Exit codes: 0 done, 1 the email's lease is busy (try again), 2 usage or settings.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, TextIO

from shared.core import telemetry_names as names
from shared.core.dead_letters import describe
from shared.core.ledger_rules import LedgerEntry
from shared.core.normalise.email import normalise_email
from shared.core.normalise.invalid import Invalid
from shared.core.privacy import email_hash, mask_phone
from tools.replay import load_tool_settings, operator_credential


def read_email(stdin: TextIO, stderr: TextIO, prompt: str = "email: ") -> str:
    """From a prompt when a terminal is attached, else the first line of standard input."""
    if stdin.isatty():
        stderr.write(prompt)
        stderr.flush()
    line = stdin.readline()
    return line.strip()


def kql(hash_: str) -> str:
    return (
        f'customEvents\n'
        f'| where timestamp > ago(30d)\n'
        f'| where name in ("{names.EVENT_SYNC_OUTCOME}", "{names.EVENT_DEAD_LETTERED}", '
        f'"{names.EVENT_CUSTOMER_ERASED}")\n'
        f'| where tostring(customDimensions.email_hash) == "{hash_}"\n'
        f'| project timestamp, name, outcome = tostring(customDimensions.outcome), '
        f'event_id = tostring(customDimensions.event_id),\n'
        f'          reason = tostring(customDimensions.reason), source = tostring(customDimensions.source), '
        f'attempt = toint(customDimensions.attempt)\n'
        f'| order by timestamp desc'
    )


def ledger_view(entry: LedgerEntry | None) -> dict[str, Any] | None:
    if entry is None:
        return None

    def key(k):
        return {"occurredAt": k.occurred_at.isoformat(), "eventId": k.event_id} if k else None

    return {
        "state": entry.state.value,
        "accountNumber": entry.account_number,
        "lastEvent": key(entry.last),
        "groups": {g: key(k) for g, k in sorted(entry.keys().items())},
        "uncertainGroups": sorted(entry.unsure()),
        "recentEventIds": list(entry.recent_event_ids),
        "lease": (
            {"until": entry.lease.until.isoformat(), "pending": key(entry.lease.pending)} if entry.lease else None
        ),
        "movedTo": entry.moved_to,
        "movedFrom": entry.moved_from,
    }


def commerce_view(customer: dict) -> dict[str, Any]:
    """What the integration writes, as Commerce holds it now (phones masked)."""
    addresses = customer.get("Addresses") or []
    primary = next((a for a in addresses if a.get("IsPrimary")), addresses[0] if addresses else None)
    return {
        "accountNumber": customer.get("AccountNumber"),
        "recordId": customer.get("RecordId"),
        "isAsync": bool(customer.get("IsAsyncCustomer")),
        "name": " ".join(
            p for p in (customer.get("FirstName"), customer.get("MiddleName"), customer.get("LastName")) if p
        ),
        "phone": mask_phone(customer.get("Phone")),
        "language": customer.get("Language"),
        "currency": customer.get("CurrencyCode"),
        "customerGroup": customer.get("CustomerGroup"),
        "address": (
            {
                "city": primary.get("City"),
                "state": primary.get("State"),
                "country": primary.get("ThreeLetterISORegionName"),
                "recordId": primary.get("RecordId"),
            }
            if primary
            else None
        ),
    }


def story(email: str, match_key: str, hashed: str, runtime, max_letters: int = 50) -> dict[str, Any]:
    from shared.core.commerce_errors import CommerceError, CommerceNotFoundError

    entry = runtime.ledger.read(hashed)
    commerce: dict[str, Any] = {}
    try:
        if entry is not None and entry.knows_customer:
            try:
                commerce["byAccount"] = commerce_view(runtime.commerce.get_customer(entry.account_number))
            except CommerceNotFoundError:
                commerce["byAccount"] = None
                commerce["note"] = "the ledger's account is not in Commerce (merged or deleted)"
        matches = runtime.commerce.search_customers_by_email(email)
        commerce["exactMatches"] = [commerce_view(m) for m in matches]
        if len(matches) > 1:
            commerce["note"] = (
                f"{len(matches)} Commerce customers share this email: the processor "
                "updates the lowest RecordId, non-async first; merge them in headquarters"
            )
    except CommerceError as error:
        commerce["error"] = f"{type(error).__name__} status={error.status} {error.error_resource_id or ''}"
    except Exception as error:  # noqa: BLE001 - no token from here, say so and show the rest
        commerce["error"] = f"Commerce could not be asked: {type(error).__name__} (run tools.preflight)"
    letters = [
        describe(x) for x, _ in zip(runtime.deadletters.query(email_hash=hashed), range(max_letters), strict=False)
    ]
    return {
        "emailHash": hashed,
        "ledger": ledger_view(entry),
        "commerce": commerce,
        "lastAppliedEvent": ledger_view(entry)["lastEvent"] if entry is not None else None,
        "deadLetters": letters,
        "kql": kql(hashed),
    }


def print_story(view: dict[str, Any], out: TextIO) -> None:
    print(f"email #{view['emailHash']}", file=out)
    ledger = view["ledger"]
    if ledger is None:
        print("ledger     no entry: no event for this email has been processed (or it was deleted)", file=out)
    else:
        last = ledger["lastEvent"]
        print(
            f"ledger     {ledger['state']}  account={ledger['accountNumber'] or '-'}  last event="
            f"{last['eventId'] + ' at ' + last['occurredAt'] if last else '-'}",
            file=out,
        )
        for group, key in ledger["groups"].items():
            unsure = " (uncertain)" if group in ledger["uncertainGroups"] else ""
            print(
                f"           {group:<8} {key['eventId'] if key else '-'}  {key['occurredAt'] if key else ''}{unsure}",
                file=out,
            )
        if ledger["lease"]:
            print(f"           lease held until {ledger['lease']['until']}", file=out)
        if ledger["movedTo"]:
            print(f"           moved to email #{ledger['movedTo'][:12]}", file=out)
    commerce = view["commerce"]
    if "byAccount" in commerce:
        print(f"commerce   by account: {json.dumps(commerce['byAccount'], ensure_ascii=False)}", file=out)
    for match in commerce.get("exactMatches", []):
        print(f"commerce   search match: {json.dumps(match, ensure_ascii=False)}", file=out)
    if not commerce.get("exactMatches") and "error" not in commerce:
        print("commerce   no customer has this email", file=out)
    for key in ("note", "error"):
        if key in commerce:
            print(f"commerce   {commerce[key]}", file=out)
    print(f"dead letters: {len(view['deadLetters'])}", file=out)
    for row in view["deadLetters"]:
        print(
            f"  {row['deadLetteredAt']}  {row['reason']:<32} {row['eventId']}  attempts={row['attempts']}  "
            f"{row['message']}",
            file=out,
        )
    print("Application Insights (Logs), the email's recent outcomes:", file=out)
    print(view["kql"], file=out)


def main(
    argv: list[str] | None = None, out: TextIO = sys.stdout, stdin: TextIO = sys.stdin, stderr: TextIO = sys.stderr
) -> int:
    p = argparse.ArgumentParser(
        prog="python -m tools.customer", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--settings", type=Path, help="local.settings.json-style file (else the environment)")
    p.add_argument("--forget", action="store_true", help="erase what the integration holds for the email")
    p.add_argument("--yes", action="store_true", help="with --forget: do not ask for confirmation")
    p.add_argument("--json", action="store_true", help="the story as one JSON document")
    p.add_argument(
        "--credential",
        choices=["azure-cli", "managed-identity"],
        default="azure-cli",
        help="identity for identity-based storage settings (default: your az login)",
    )
    args = p.parse_args(argv)
    loaded = load_tool_settings(args.settings, stderr)
    if loaded is None:
        return 2
    env, settings = loaded
    try:
        email, match_key = normalise_email(read_email(stdin, stderr))
    except Invalid as error:
        print(f"not a usable email: {error}", file=stderr)
        return 2
    hashed = email_hash(match_key, settings.email_hash_key)
    if not args.forget:
        from tools.dryrun import read_only_runtime

        runtime = read_only_runtime(env, settings, args.credential, commerce_concurrency=2)
        view = story(email, match_key, hashed, runtime)
        if args.json:
            print(json.dumps(view, ensure_ascii=False), file=out)
        else:
            print_story(view, out)
        return 0
    if not args.yes:
        if not stdin.isatty():
            print("--forget without a terminal needs --yes", file=stderr)
            return 2
        stderr.write(f"erase what the integration holds for email #{hashed[:12]}? type 'forget': ")
        stderr.flush()
        if stdin.readline().strip() != "forget":
            print("nothing erased", file=stderr)
            return 2
    from shared.usecases.erasure import ErasureBusy, erase_customer

    runtime = operator_runtime(env, args.credential)
    try:
        report = erase_customer(hashed, runtime.erasure_deps)
    except ErasureBusy as busy:
        print(f"a worker is writing this customer to Commerce now: try again in {busy.retry_after:.0f} s", file=stderr)
        return 1
    print(json.dumps(report.summary()), file=out)
    if report.account_number:
        print(
            f"the Commerce customer {report.account_number} is not deleted by this tool: erase it in "
            "headquarters if the request covers it",
            file=out,
        )
    return 0


def operator_runtime(env, credential: str):
    """The app's runtime, built as the app builds it, with the operator's identity for storage."""
    from shared.adapters.dead_letter_table import DeadLetterStore
    from shared.adapters.ledger_table import LedgerStore
    from shared.adapters.storage import StorageFactory
    from shared.runtime import build_runtime

    runtime = build_runtime(env)
    if runtime.settings.storage_connection == "identity":
        runtime.storage = StorageFactory(env, operator_credential(credential))
        runtime.ledger = LedgerStore(runtime.storage.table(runtime.settings.ledger_table))
        runtime.deadletters = DeadLetterStore(runtime.storage.table(runtime.settings.deadletter_table))
    return runtime


if __name__ == "__main__":
    raise SystemExit(main())
