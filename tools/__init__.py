"""The Python side of dendrite's checks: the shared server harness (tools.harness), the
scenario tests run with pytest (tools.scenarios) and the load tools (tools.load).

A package so that every piece imports the others by name (`from tools import harness`) when run
from the repository root, with `python -m pytest tools/scenarios/...` or `python -m tools.load.X`.
"""
