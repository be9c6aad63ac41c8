"""What more than one test module needs: builders of events and ledger entries, fakes of the ports,
the stacks the integration tests start, and models of files the tests read (Bicep, .funcignore).

Test modules import from here (and get fixtures from their conftest.py the way pytest hands them
out); none imports another test module or a conftest, which tests/unit/test_layout.py checks."""
