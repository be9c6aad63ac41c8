"""The pure core: the event contract and field table, validation and normalisation, the Commerce bodies
built from an event, the ledger's rules, failure classification, retry policy and masking. Nothing here
does I/O or imports an adapter; every function is tested without a network, a queue or a table."""
