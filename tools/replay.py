"""List dead-lettered events and put them back on the event queue after a fix.

    python -m tools.replay list   [filters] [--json]
    python -m tools.replay replay [filters | --all] [--dry-run]

Filters: --reason (exact, or a prefix ending in '*'), --event-id, --email-hash, --email (hashed
here with EMAIL_HASH_KEY; never printed), --since / --until (ISO 8601). Settings come from the
environment, or from a local.settings.json-style file with --settings. A replayed event is queued as
it was first accepted (same event id, same data) and its dead letter is removed once it is queued; if
it fails again it is dead-lettered again with its new reason.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterable, Iterator, Mapping

from shared.deadletters import DeadLetter, DeadLetterStore, describe
from shared.envelope import Envelope
from shared.normalise.errors import Invalid
from shared.errors import MessageFormatError
from shared.privacy import email_hash
from shared.settings import load_settings
from shared.storage import StorageFactory


def _when(text: str) -> datetime:
    value = datetime.fromisoformat(text)
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m tools.replay", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("command", choices=["list", "replay"])
    p.add_argument("--settings", type=Path, help="local.settings.json-style file (else the environment)")
    p.add_argument("--reason")
    p.add_argument("--event-id")
    p.add_argument("--email-hash")
    p.add_argument("--email", help="hashed with EMAIL_HASH_KEY before use")
    p.add_argument("--since", type=_when)
    p.add_argument("--until", type=_when)
    p.add_argument("--all", action="store_true", help="replay every dead letter (no filter)")
    p.add_argument("--dry-run", action="store_true", help="show what would be replayed")
    p.add_argument("--json", action="store_true", help="list as JSON lines")
    p.add_argument("--credential", choices=["azure-cli", "managed-identity"], default="azure-cli",
                   help="identity for identity-based storage settings (default: your az login)")
    return p


def load_env(path: Path | None) -> Mapping[str, str]:
    if path is None:
        return os.environ
    values = json.loads(path.read_text())["Values"]
    return {**values, **os.environ}


def operator_credential(kind: str):
    """The identity an operator's command uses for identity-based storage settings."""
    if kind == "managed-identity":
        return None  # StorageFactory then uses AzureWebJobsStorage__clientId, as the app does
    from azure.identity import AzureCliCredential

    return AzureCliCredential()


def select(store: DeadLetterStore, args: argparse.Namespace, hash_key: bytes) -> Iterator[DeadLetter]:
    hashed = args.email_hash
    if args.email:
        from shared.normalise.email import normalise_email

        hashed = email_hash(normalise_email(args.email)[1], hash_key)  # Invalid: see main
    prefix = args.reason[:-1] if args.reason and args.reason.endswith("*") else None
    letters = store.query(reason=None if prefix is not None else args.reason, email_hash=hashed,
                          event_id=args.event_id, since=args.since, until=args.until)
    return (x for x in letters if prefix is None or x.reason.startswith(prefix))


def replay(letters: Iterable[DeadLetter], store: DeadLetterStore, send, *, dry_run: bool,
           out=sys.stdout) -> dict[str, int]:
    counts = {"replayed": 0, "skipped_unreadable": 0, "kept_newer_failure": 0}
    for letter in letters:
        try:
            envelope = Envelope.from_json(letter.envelope)
        except MessageFormatError:
            counts["skipped_unreadable"] += 1
            print(f"skip {letter.event_id}: the stored message is unreadable ({letter.reason})", file=out)
            continue
        if not dry_run:
            send(envelope.model_copy(update={"replayed": True}).to_json())
            if not store.delete(letter):
                # The replayed event already failed again: its new dead letter stays.
                counts["kept_newer_failure"] += 1
        counts["replayed"] += 1
        print(f"{'would replay' if dry_run else 'replayed'} {letter.event_id} ({letter.reason})", file=out)
    return counts


def main(argv: list[str] | None = None, out=sys.stdout) -> int:
    args = parser().parse_args(argv)
    env = load_env(args.settings)
    settings = load_settings(env)
    storage = StorageFactory(env, operator_credential(args.credential))
    store = DeadLetterStore(storage.table(settings.deadletter_table))
    filtered = any([args.reason, args.event_id, args.email_hash, args.email, args.since, args.until])
    try:
        letters = select(store, args, settings.email_hash_key)
    except Invalid as error:
        print(f"--email: {error}", file=sys.stderr)
        return 2
    if args.command == "list":
        n = 0
        for letter in letters:
            n += 1
            row = describe(letter)
            print(json.dumps(row) if args.json else
                  f"{row['deadLetteredAt']}  {row['reason']:<32} {row['eventId']}  "
                  f"email#{row['emailHash'][:12]}  attempts={row['attempts']}  {row['message']}", file=out)
        print(f"{n} dead letter(s)", file=sys.stderr)
        return 0
    if not filtered and not args.all:
        print("replay needs a filter, or --all to replay every dead letter", file=sys.stderr)
        return 2
    queue = storage.queue(settings.events_queue)
    counts = replay(letters, store, lambda text: queue.send_message(text, time_to_live=-1),
                    dry_run=args.dry_run, out=out)
    print(json.dumps(counts), file=out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
