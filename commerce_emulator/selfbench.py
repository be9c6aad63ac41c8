"""How fast is the emulator? ``python -m commerce_emulator.selfbench [--clients 16] [--seconds 5]``.

Starts the emulator as its own process (so client and server do not share a GIL), seeds customers, then runs
N concurrent keep-alive clients (one http.client connection each, the lightest Python client) that alternate
SearchByFields and GET by key, and prints requests/second, latency percentiles and the server's CPU time per
request (on a busy machine the clients share its cores, so that figure is the steadier one). No faults.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import statistics
import threading
import time
from urllib.parse import urlsplit

from .odata import key_literal
from .testing import start_emulator_process


def _client(
    host: str,
    port: int,
    token: str,
    accounts: list[str],
    emails: list[str],
    offset: int,
    deadline: float,
    results: list,
    errors: list,
) -> None:
    conn = http.client.HTTPConnection(host, port, timeout=10)
    headers = {"Authorization": f"id_token {token}", "OUN": "052", "Content-Type": "application/json"}
    latencies: list[float] = []
    i = offset
    try:
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            if i % 2:
                body = json.dumps(
                    {
                        "CustomerSearchByFieldCriteria": {
                            "Criteria": [
                                {"SearchTerm": emails[i % len(emails)], "SearchField": {"Name": "Email", "Value": 3}}
                            ],
                            "DataLevelValue": 1,
                        }
                    }
                )
                conn.request("POST", "/Commerce/Customers/SearchByFields?$top=50&api-version=7.3", body, headers)
            else:
                conn.request(
                    "GET",
                    f"/Commerce/Customers({key_literal(accounts[i % len(accounts)])})?api-version=7.3",
                    headers=headers,
                )
            response = conn.getresponse()
            response.read()
            if response.status != 200:
                errors.append(response.status)
            latencies.append(time.perf_counter() - started)
            i += 1
    finally:
        conn.close()
        results.append(latencies)


def _cpu_seconds(pid: int) -> float | None:
    """User+system CPU time of a process (Linux /proc), to separate the server's cost from the client's."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def run(clients: int = 16, seconds: float = 5.0, customers: int = 2000) -> dict[str, float]:
    handle = start_emulator_process()
    try:
        seeded = handle.seed(
            [
                {
                    "FirstName": f"Bench{n}",
                    "LastName": "Customer",
                    "Email": f"bench{n}@example.com",
                    "Addresses": [
                        {
                            "Street": f"{n} Main St",
                            "City": "Albany",
                            "State": "NY",
                            "ZipCode": "12207",
                            "ThreeLetterISORegionName": "USA",
                        }
                    ],
                }
                for n in range(customers)
            ]
        )
        accounts = [c["AccountNumber"] for c in seeded]
        emails = [c["Email"] for c in seeded]
        url = urlsplit(handle.url)
        results: list[list[float]] = []
        errors: list[int] = []
        deadline = time.perf_counter() + seconds
        threads = [
            threading.Thread(
                target=_client,
                args=(url.hostname, url.port, handle.token, accounts, emails, n * 7919, deadline, results, errors),
            )
            for n in range(clients)
        ]
        cpu_before = _cpu_seconds(handle.process.pid)
        started = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.perf_counter() - started
        cpu_after = _cpu_seconds(handle.process.pid)
        calls = handle.calls()
    finally:
        handle.stop()
    latencies = sorted(x for r in results for x in r)
    server_cpu = cpu_after - cpu_before if cpu_before is not None and cpu_after is not None else None
    per_request_us = round(server_cpu / len(latencies) * 1e6) if server_cpu and latencies else None
    return {
        "clients": clients,
        "seconds": round(elapsed, 2),
        "requests": len(latencies),
        "errors": len(errors),
        "requests_per_second": round(len(latencies) / elapsed),
        "p50_ms": round(statistics.median(latencies) * 1000, 2),
        "p99_ms": round(latencies[int(len(latencies) * 0.99) - 1] * 1000, 2),
        "server_counted": calls["total"],
        # the server's own CPU per request: its capacity on one free core, whatever the client costs
        "server_cpu_us_per_request": per_request_us,
        "server_capacity_per_core": round(1e6 / per_request_us) if per_request_us else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m commerce_emulator.selfbench")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--customers", type=int, default=2000)
    args = parser.parse_args()
    print(json.dumps(run(args.clients, args.seconds, args.customers)))


if __name__ == "__main__":
    main()
