"""List dead-lettered events and put them back on the event queue after a fix.

    python -m tools.replay list   [filters] [--json]
    python -m tools.replay replay [filters | --all] [--dry-run]

Filters: --reason (exact, or a prefix ending in '*'), --event-id, --email-hash, --email (hashed
here with EMAIL_HASH_KEY; never printed), --since / --until (ISO 8601). Settings come from the
environment, or from a local.settings.json-style file with --settings. A replayed event is queued as
it was first accepted (same event id, same data) and its dead letter is removed once it is queued; if
it fails again it is dead-lettered again with its new reason.

A replayed event is judged like any other by the sync ledger: if its email has since had this event
or a newer one applied, it is skipped as duplicate or stale. --force applies it anyway (the customer
is read and brought to this event's data; the ledger's last-applied event does not move back).
Its retry clock starts again: attempt 1, and a new maximum age from the moment of the replay.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

from shared.adapters.dead_letter_table import DeadLetterStore
from shared.adapters.storage import StorageFactory, StorageQueueSender
from shared.core.dead_letters import DeadLetter, describe
from shared.core.envelope import Envelope
from shared.core.failures import MessageFormatError
from shared.core.normalise.invalid import Invalid
from shared.core.privacy import email_hash
from shared.core.settings import Settings, SettingsError, load_settings, read_setting, storage_configured


def iso_datetime(text: str) -> datetime:
    value = datetime.fromisoformat(text)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m tools.replay", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("command", choices=["list", "replay"])
    p.add_argument("--settings", type=Path, help="local.settings.json-style file (else the environment)")
    p.add_argument("--reason")
    p.add_argument("--event-id")
    p.add_argument("--email-hash", help="the 64-character hash, or a prefix of at least 12 characters")
    p.add_argument("--email", help="hashed with EMAIL_HASH_KEY before use")
    p.add_argument("--since", type=iso_datetime)
    p.add_argument("--until", type=iso_datetime)
    p.add_argument("--all", action="store_true", help="replay every dead letter (no filter)")
    p.add_argument("--dry-run", action="store_true", help="show what would be replayed")
    p.add_argument(
        "--force", action="store_true", help="apply even if the ledger has this event or a newer one for the email"
    )
    p.add_argument("--json", action="store_true", help="list as JSON lines")
    p.add_argument(
        "--credential",
        choices=["azure-cli", "managed-identity"],
        default="azure-cli",
        help="identity for identity-based storage settings (default: your az login)",
    )
    return p


ROOT = Path(__file__).resolve().parent.parent


def load_tool_settings(path: Path | None, err: TextIO) -> tuple[Mapping[str, str], Settings] | None:
    """The environment and settings an operator tool runs on (``load_env``), or None once what is
    incomplete has been printed to ``err`` (the tool then exits with 2)."""
    env = load_env(path)
    try:
        return env, load_settings(env)
    except SettingsError as error:
        print(f"settings incomplete: {'; '.join(error.problems)}", file=err)
        return None


def load_env(path: Path | None) -> Mapping[str, str]:
    """Settings from --settings, else the environment; with neither, the local run's settings file
    (local.settings.json, else local.settings.sample.json), read the way the local host reads it."""
    from tools.local_settings import merged, read_settings, settings_path

    if path is None and not storage_configured(os.environ):
        path = settings_path(ROOT)
        if path is not None:
            print(
                f"settings: {path.name} (no --settings and no AzureWebJobsStorage in the environment)", file=sys.stderr
            )
    if path is None:
        return os.environ
    return merged(read_settings(path)[0], os.environ)


def operator_credential(kind: str):
    """The identity an operator's command uses for identity-based storage settings."""
    if kind == "managed-identity":
        return None  # StorageFactory then uses AzureWebJobsStorage__clientId, as the app does
    from azure.identity import AzureCliCredential

    return AzureCliCredential()


def select(store: DeadLetterStore, args: argparse.Namespace, env: Mapping[str, str]) -> Iterator[DeadLetter]:
    hashed = args.email_hash
    if args.email:
        from shared.core.normalise.email import normalise_email

        key = read_setting(env, "EMAIL_HASH_KEY")
        if not key:
            raise Invalid("required", "needs EMAIL_HASH_KEY in the settings (or use --email-hash)")
        hashed = email_hash(normalise_email(args.email)[1], key.encode("utf-8"))
    prefix = args.reason[:-1] if args.reason and args.reason.endswith("*") else None
    letters = store.query(
        reason=None if prefix is not None else args.reason,
        email_hash=hashed,
        event_id=args.event_id,
        since=args.since,
        until=args.until,
    )
    return (x for x in letters if prefix is None or x.reason.startswith(prefix))


def replay(
    letters: Iterable[DeadLetter],
    store: DeadLetterStore,
    send,
    *,
    dry_run: bool,
    force: bool = False,
    now: datetime | None = None,
    out=sys.stdout,
) -> dict[str, int]:
    done = "would_replay" if dry_run else "replayed"
    counts = {done: 0, "skipped_unreadable": 0, "kept_newer_failure": 0}
    for letter in letters:
        try:
            envelope = Envelope.from_json(letter.envelope)
        except MessageFormatError:
            counts["skipped_unreadable"] += 1
            print(f"skip {letter.event_id}: the stored message is unreadable ({letter.reason})", file=out)
            continue
        if not dry_run:
            send(
                envelope.model_copy(
                    update={
                        "replayed": True,
                        "force": force,
                        "attempt": 1,
                        "last_reason": None,
                        "ingested_at": now or datetime.now(UTC),
                    }
                ).to_json()
            )
            if not store.delete(letter):
                # The replayed event already failed again: its new dead letter stays.
                counts["kept_newer_failure"] += 1
        counts[done] += 1
        print(f"{'would replay' if dry_run else 'replayed'} {letter.event_id} ({letter.reason})", file=out)
    return counts


def main(argv: list[str] | None = None, out=sys.stdout) -> int:
    args = parser().parse_args(argv)
    env = load_env(args.settings)
    if not storage_configured(env):
        print("AzureWebJobsStorage is not set: pass --settings or set the environment", file=sys.stderr)
        return 2
    storage = StorageFactory(env, operator_credential(args.credential))
    store = DeadLetterStore(storage.table(read_setting(env, "DEADLETTER_TABLE_NAME")))
    filtered = any([args.reason, args.event_id, args.email_hash, args.email, args.since, args.until])
    if args.email_hash and len(args.email_hash) < 12:
        print("--email-hash needs at least 12 characters", file=sys.stderr)
        return 2
    try:
        letters = select(store, args, env)
    except Invalid as error:
        print(f"--email: {error}", file=sys.stderr)
        return 2
    if args.command == "list":
        n = 0
        for letter in letters:
            n += 1
            row = describe(letter)
            print(
                json.dumps(row)
                if args.json
                else f"{row['deadLetteredAt']}  {row['reason']:<32} {row['eventId']}  "
                f"email#{row['emailHash'][:12]}  attempts={row['attempts']}  {row['message']}",
                file=out,
            )
        print(f"{n} dead letter(s)", file=sys.stderr)
        return 0
    if not filtered and not args.all:
        print("replay needs a filter, or --all to replay every dead letter", file=sys.stderr)
        return 2
    sender = StorageQueueSender(storage.queue(read_setting(env, "EVENTS_QUEUE_NAME")))
    counts = replay(letters, store, sender.send, dry_run=args.dry_run, force=args.force, out=out)
    print(json.dumps(counts), file=out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
