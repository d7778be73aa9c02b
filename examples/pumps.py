#!/usr/bin/env python3
"""The README's pump example with the Python client (examples/pumps.sh does it with curl): pump
readings learnt as normal states, a noisy reading recognised with the per-field breakdown, an
unusual one matching nothing. Each answer is checked; the first that is not what the README says
stops it with a one-line reason (exit 1). Re-runnable against the same server.

Usage: examples/pumps.py   (after `pip install ./clients/python`; start the service first, e.g.
       `cargo run --release`; DENDRITE_URL points it at another one, DENDRITE_API_KEY gives a key)
"""

import sys
from datetime import datetime, timedelta, timezone

import dendrite

BERLIN_WINTER = timezone(timedelta(hours=1))


def check(ok: bool, failure: str) -> None:
    if not ok:
        sys.exit(f"pumps.py: {failure}")


def main() -> None:
    with dendrite.Client() as client:
        # 1. The space: 2048 bits; 40 active, shared out among the fields.
        try:
            space = client.create_space("pumps", input_size=2048, seed=7, encoder={"fields": {
                "temperature": {"type": "number", "active_bits": 14, "resolution": 0.5},
                "vibration": {"type": "number", "active_bits": 10, "resolution": 0.1},
                "time": {"type": "time", "timezone": "Europe/Berlin",
                         "time_of_day": {"active_bits": 6}, "weekend": {"active_bits": 2}},
                "device": {"type": "category", "active_bits": 8},
            }})
        except dendrite.Conflict as conflict:
            sys.exit(f"pumps.py: a space \"pumps\" already exists on {client.url} with other parameters: {conflict}")
        check(space.parameters.active_bits == 40, "active_bits is not the fields' sum, 40")
        radius = space.encoder.fields["temperature"].recognition_radius if space.encoder else None
        print(f"temperature is recognised within {radius} degrees")

        # 2. Normal states of pump-3, learnt on a weekday: a cool morning and a warm afternoon.
        results = client.store_many("pumps", [
            {"neuron": "pump-3", "id": "morning", "record": {
                "temperature": 58.0, "vibration": 0.3,
                "time": datetime(2026, 12, 2, 9, 0, tzinfo=BERLIN_WINTER), "device": "pump-3"}},
            {"neuron": "pump-3", "id": "afternoon", "record": {
                "temperature": 66.0, "vibration": 0.5,
                "time": datetime(2026, 12, 2, 15, 0, tzinfo=BERLIN_WINTER), "device": "pump-3"}},
        ])
        check(len(results) == 2, "the batch did not store two readings")

        # 3. A reading close to the morning one: recognised, and the fields say why.
        answer = client.query("pumps", record={
            "temperature": 58.6, "vibration": 0.3,
            "time": datetime(2026, 12, 3, 9, 20, tzinfo=BERLIN_WINTER), "device": "pump-3"})
        check(len(answer.matches) > 0, "the noisy morning reading matched nothing")
        best = answer.matches[0]
        check(best.neuron == "pump-3" and best.pattern == "morning", "it is not recognised as pump-3's morning")
        check(best.fields is not None and sum(best.fields.values()) == best.overlap,
              "the match has no per-field breakdown summing to its overlap")
        print(f"recognised {best.neuron}/{best.pattern}: p = {best.p_value.value:.3g} "
              f"(log10 {best.p_value.log10:.1f}), bits by field {best.fields}")

        # 4. An unusual reading of the same pump: hot, shaking, on a Sunday night. Nothing matches.
        unusual = client.query("pumps", record={
            "temperature": 85.0, "vibration": 2.4,
            "time": datetime(2026, 12, 6, 3, 0, tzinfo=BERLIN_WINTER), "device": "pump-3"})
        check(unusual.matches == [], "the unusual reading matched a normal state")
        print(f"pumps.py: every answer as the README says ({client.url})")


if __name__ == "__main__":
    main()
