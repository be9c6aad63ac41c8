"""Run every benchmark: ``python -m bench`` (or ``make bench``). Each prints JSON to stdout."""

from bench import backfill, core, pipeline

if __name__ == "__main__":
    print("== validate + map CPU time per event (python -m bench.core)")
    core.main([])
    print("== Commerce calls and ledger operations per event, token fetches, throughput "
          "(python -m bench.pipeline)")
    pipeline.main([])
    print("== backfill: records validated and queued per second, CPU per record and per SDK send, memory "
          "(python -m bench.backfill)")
    backfill.main([])
