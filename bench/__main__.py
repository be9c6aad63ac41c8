"""Run every benchmark: ``python -m bench`` (or ``make bench``). Each prints JSON to stdout."""

from bench import backfill, core, cost, pipeline

if __name__ == "__main__":
    print("== validate + map CPU time per event (python -m bench.core)")
    core.main([])
    print("== Commerce calls and ledger operations per event, token fetches, throughput (python -m bench.pipeline)")
    pipeline.main([])
    print("== how the cost of an event grows: ledger size, near-miss addresses (python -m bench.cost)")
    cost.main([])
    print(
        "== backfill: records validated and queued per second, CPU per record and per SDK send, memory "
        "(python -m bench.backfill)"
    )
    backfill.main([])
