"""Scenario tests: whole-binary checks of dendrite run with pytest (kill -9 under load, a full
and a read-only filesystem, several replicas on PostgreSQL, the dashboard in a browser, the
Dockerfile's build stage). Each file runs alone: `python -m pytest tools/scenarios/test_NAME.py`."""
