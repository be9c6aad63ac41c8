"""One queue trigger: poll, run invocations concurrently, then delete, release or move to poison.

This reproduces the Functions host's queue listener for what the app relies on:
- receive up to ``batchSize`` messages with a long in-flight visibility, and fetch again once in-flight
  work has dropped to ``newBatchThreshold`` (so at most batchSize + newBatchThreshold run at once);
- back off polling (100 ms doubling up to ``maxPollingInterval``) while the queue is empty;
- success deletes the message; failure releases it for ``visibilityTimeout`` or, once its dequeue count
  has reached ``maxDequeueCount``, copies it to ``<queue>-poison`` (never expiring) and deletes it;
- a body that is not valid base64 (with base64 encoding) goes straight to poison without an invocation;
  one that is base64 but not UTF-8 fails its invocation without running the function. Both follow what
  the host does (``devhost.queue_codec`` has the rules); poison queues have poison queues of their own
  (``<queue>-poison-poison``), as in the host.
Nothing of a message's content is logged, and no message can stop the listener: whatever goes wrong
with one is logged as its id and an exception type.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import timedelta

from azure.core.exceptions import AzureError, ResourceExistsError
from azure.functions.queue import QueueMessage as TriggerMessage
from azure.storage.queue import QueueClient
from azure.storage.queue import QueueMessage as StoredMessage

from devhost.bindings import QueueFunction
from devhost.host_config import QueueOptions
from devhost.invoke import FunctionExecutor, describe_exception
from devhost.queue_codec import check_text, decode_body, trigger_value

log = logging.getLogger("devhost.queue")
MIN_POLLING_INTERVAL = 0.1  # seconds; the host's minimum
POISON_SUFFIX = "-poison"


class QueueListener:
    def __init__(
        self,
        function: QueueFunction,
        connection_string: str,
        options: QueueOptions,
        in_flight_visibility: timedelta,
        executor: FunctionExecutor,
    ):
        self.function = function
        self.options = options
        self.executor = executor
        self.queue = QueueClient.from_connection_string(connection_string, function.queue_name)
        self.poison_queue_name = function.queue_name + POISON_SUFFIX
        self.poison = QueueClient.from_connection_string(connection_string, self.poison_queue_name)
        self._in_flight_visibility = max(int(in_flight_visibility.total_seconds()), 30)
        self._stop = threading.Event()
        self._changed = threading.Condition()
        self._running: dict[str, StoredMessage] = {}
        self._thread: threading.Thread | None = None

    # --- lifecycle -------------------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._poll_loop, name=f"devhost-queue-{self.function.name}", daemon=True)
        self._thread.start()

    def request_stop(self) -> None:
        """Stop fetching new messages (running invocations go on)."""
        self._stop.set()
        with self._changed:
            self._changed.notify_all()

    def stop(self, grace: float = 3.0) -> None:
        """Stop polling, give running invocations ``grace`` seconds, release what is still running."""
        self.request_stop()
        if self._thread:
            self._thread.join(timeout=grace)
        deadline = time.monotonic() + grace
        with self._changed:
            while self._running and time.monotonic() < deadline:
                self._changed.wait(timeout=max(deadline - time.monotonic(), 0.01))
            abandoned = list(self._running.values())
        for message in abandoned:
            # This process stops while the invocation runs: make the message visible for another worker
            # now instead of after the long in-flight visibility.
            log.warning(
                "Stopping while 'Functions.%s' still runs for message %s: releasing it", self.function.name, message.id
            )
            self._try(
                lambda m=message: self.queue.update_message(m, pop_receipt=m.pop_receipt, visibility_timeout=0),
                "release",
            )
        if not abandoned:  # an abandoned invocation may still use the clients when it finishes
            self.queue.close()
            self.poison.close()

    @property
    def in_flight(self) -> int:
        with self._changed:
            return len(self._running)

    def approximate_count(self) -> int:
        return self.queue.get_queue_properties().approximate_message_count or 0

    # --- polling ---------------------------------------------------------------------------
    def _poll_loop(self) -> None:
        delay = 0.0
        max_delay = max(self.options.max_polling_interval.total_seconds(), MIN_POLLING_INTERVAL)
        while not self._stop.is_set():
            with self._changed:
                while len(self._running) > self.options.new_batch_threshold and not self._stop.is_set():
                    self._changed.wait()
            if self._stop.is_set():
                return
            try:
                pages = self.queue.receive_messages(
                    messages_per_page=self.options.batch_size, visibility_timeout=self._in_flight_visibility
                ).by_page()
                batch = list(next(pages, []))
            except (AzureError, OSError) as error:
                log.warning("Polling queue '%s' failed: %s", self.function.queue_name, type(error).__name__)
                batch = []
            if not batch:
                delay = min(max(delay * 2, MIN_POLLING_INTERVAL), max_delay)
                self._stop.wait(delay)
                continue
            delay = 0.0
            for message in batch:
                with self._changed:
                    self._running[message.id] = message
                threading.Thread(
                    target=self._process, args=(message,), daemon=True, name=f"devhost-invoke-{self.function.name}"
                ).start()

    # --- one message -----------------------------------------------------------------------
    def _process(self, message: StoredMessage) -> None:
        try:
            self._handle(message)
        except Exception as error:  # noqa: BLE001 - a defect here must not print a traceback that could quote the body
            log.error(
                "Handling message %s on queue '%s' failed: %s",
                message.id,
                self.function.queue_name,
                describe_exception(error),
            )
        finally:
            with self._changed:
                self._running.pop(message.id, None)
                self._changed.notify_all()

    def _handle(self, message: StoredMessage) -> None:
        name, limit = self.function.name, self.options.max_dequeue_count
        body = decode_body(message.content, self.options.message_encoding)
        if body is None:
            # The host's own wording, then where the message goes.
            log.warning(
                "Message decoding has failed! Check MessageEncoding settings. MessageId=%s. "
                "Moving message to queue '%s'.",
                message.id,
                self.poison_queue_name,
            )
            self._move_to_poison(message)
            return
        if message.dequeue_count > limit:  # e.g. a worker died mid-invocation on its last attempt
            self._warn_poison(message)
            self._move_to_poison(message)
            return
        trigger = TriggerMessage(
            id=message.id,
            body=body,
            dequeue_count=message.dequeue_count,
            insertion_time=message.inserted_on,
            expiration_time=message.expires_on,
            time_next_visible=message.next_visible_on,
            pop_receipt=message.pop_receipt,
        )
        started = time.monotonic()
        try:
            check_text(body)
            argument = trigger_value(trigger, self.function.invoker.trigger_annotation)
            self.function.invoker(argument, self.executor)
        except Exception as error:  # noqa: BLE001 - as the Functions host: a failed run is logged, the message retried
            log.error(
                "Executed 'Functions.%s' (Failed, MessageId=%s, DequeueCount=%d, Duration=%dms): %s",
                name,
                message.id,
                message.dequeue_count,
                (time.monotonic() - started) * 1000,
                describe_exception(error),
            )
            if message.dequeue_count >= limit:
                self._warn_poison(message)
                self._move_to_poison(message)
            else:
                # The service takes whole seconds; like the .NET SDK, a fraction is dropped.
                seconds = int(self.options.visibility_timeout.total_seconds())
                self._try(
                    lambda: self.queue.update_message(
                        message, pop_receipt=message.pop_receipt, visibility_timeout=seconds
                    ),
                    "release",
                )
            return
        log.info(
            "Executed 'Functions.%s' (Succeeded, MessageId=%s, DequeueCount=%d, Duration=%dms)",
            name,
            message.id,
            message.dequeue_count,
            (time.monotonic() - started) * 1000,
        )
        self._try(lambda: self.queue.delete_message(message, pop_receipt=message.pop_receipt), "delete")

    def _warn_poison(self, message: StoredMessage) -> None:
        # The host's own wording, so log searches written for Azure work locally too.
        log.warning(
            "Message has reached MaxDequeueCount of %d. Moving message to queue '%s'.",
            self.options.max_dequeue_count,
            self.poison_queue_name,
        )

    def _move_to_poison(self, message: StoredMessage) -> None:
        def move() -> None:
            try:
                self.poison.create_queue()
            except ResourceExistsError:
                pass
            # The stored text is copied as is: the original's encoding, a new id, no expiry.
            self.poison.send_message(message.content, time_to_live=-1)
            self.queue.delete_message(message, pop_receipt=message.pop_receipt)

        self._try(move, "move to poison")

    def _try(self, action, what: str) -> None:
        try:
            action()
        except (AzureError, OSError) as error:
            # Typically a pop receipt that is no longer valid: the message became visible again.
            log.warning(
                "Could not %s a message on queue '%s': %s", what, self.function.queue_name, type(error).__name__
            )
