"""Load tools: measurements of the release binary on 127.0.0.1 (throughput with wrk, soak,
isolation, backups, replicas on PostgreSQL, memory, ...), each run as `python -m tools.load.NAME`
from the repository root. The README's Performance section quotes their figures."""
