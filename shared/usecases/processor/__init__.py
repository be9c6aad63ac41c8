"""Queue processing: apply one event to Commerce (create, update or nothing), or say why not.

The flow for one event (``docs/ledger.md`` has the state diagram):
1. read the envelope (unreadable -> dead letter at once);
2. read the email's ledger entry: an event already applied is a ``duplicate``, one older than the
   last applied is ``stale``; both are acknowledged with no Commerce call;
3. take the email's lease (insert-if-absent, or an ETag-conditional take-over of an expired one). A
   live lease of another worker -> the event is sent again with a 1-5 s delay (``deferred``): only
   the lease holder ever searches, creates or updates that email's customer. An email that is likely
   new skips the read: the insert that takes the lease fails if the entry exists (``EntryPresence``).
   A known customer whose field groups are unchanged needs no lease: the event is recorded by one
   write conditional on the ETag read (``unchanged``);
4. under the lease: a known customer with unchanged field groups -> nothing; changed groups -> one
   PATCH; otherwise find it (sender's hint, then exact email search), read it and PATCH the
   difference, or create it. A 404 on the stored account (deleted, merged, async number replaced)
   re-resolves by email;
5. record the result and release the lease in one conditional write.
Failures are classified once (``shared.core.failures.classify_failure``) and end the delivery: sent
again with a delay, or dead-lettered. Every delivery ends in exactly one ``CustomerSyncOutcome``
telemetry event.

Three modules, each one job: ``delivery`` (steps 1 and the end of every delivery: acknowledge, send
again, dead-letter, the poison queue), ``lease`` (steps 2, 3 and 5: the lease protocol on the ledger)
and ``lookup`` (step 4: finding, creating and updating the Commerce customer).
"""

from shared.core.ledger_rules import LedgerPort
from shared.usecases.processor.delivery import (
    CallCounter,
    DeadLetterPort,
    Delivery,
    ProcessorDeps,
    ProcessResult,
    RetryLater,
    collect_poison,
    keep_stranded,
    process_message,
)
from shared.usecases.processor.lease import LEASE_RACES, EntryPresence, apply_event
from shared.usecases.processor.lookup import CommercePort, pick_customer

__all__ = [
    "LEASE_RACES",
    "CallCounter",
    "CommercePort",
    "DeadLetterPort",
    "Delivery",
    "EntryPresence",
    "LedgerPort",
    "ProcessResult",
    "ProcessorDeps",
    "RetryLater",
    "apply_event",
    "collect_poison",
    "keep_stranded",
    "pick_customer",
    "process_message",
]
