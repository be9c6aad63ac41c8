"""A local Commerce Scale Unit (Dynamics 365 Commerce Retail Server) emulator for the Customer API.

Local development component, not product code: tests, benchmarks and local runs talk to it instead of a real
CSU. It speaks the wire format of docs/commerce-api.md ("Operations used"), strict where the API is known and
configurable where it is not, and injects faults on demand. Standard library only (plus pycountry).

- ``python -m commerce_emulator --port 7075`` runs it as a process;
- ``commerce_emulator.testing.start_emulator_process()`` starts that process for tests;
- ``EmulatorServer(port=0).start()`` runs it inside the current process.
"""

from .config import DEFAULT_CONFIG, DEFAULT_PORT, DEFAULT_TOKEN
from .server import EmulatorServer

__all__ = ["DEFAULT_CONFIG", "DEFAULT_PORT", "DEFAULT_TOKEN", "EmulatorServer"]
