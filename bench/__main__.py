"""Run every benchmark: ``python -m bench`` (or ``make bench``). Each prints JSON to stdout."""

from bench import core, pipeline

if __name__ == "__main__":
    print("== validate + map CPU time per event (python -m bench.core)")
    core.main([])
    print("== Commerce calls and ledger operations per event, token fetches, throughput "
          "(python -m bench.pipeline)")
    pipeline.main([])
