#!/usr/bin/env bash
# The README's "Records instead of bits": pump readings (temperature, vibration, time, device)
# learnt as normal states, then a noisy reading recognised with the per-field breakdown, and an
# unusual reading that matches nothing. Each answer is printed and checked; the first one that is
# not what the README says stops it with a one-line reason (exit 1).
#
# Re-runnable against the same server: the space and the readings, sent again, answer 200.
#
# Usage: examples/pumps.sh   (needs curl and python3; start the service first, e.g.
#        `cargo run --release`; DENDRITE_URL points it at another one)
set -euo pipefail

session="pumps"
# shellcheck source=examples/checks.sh
source "$(dirname "$0")/checks.sh"

# 1. The space: 2048 bits; 40 active, shared out among the fields (active_bits is their sum).
request PUT /v1/spaces/pumps '{"input_size": 2048, "seed": 7, "encoder": {"fields": {
    "temperature": {"type": "number", "active_bits": 14, "resolution": 0.5},
    "vibration":   {"type": "number", "active_bits": 10, "resolution": 0.1},
    "time":        {"type": "time", "timezone": "Europe/Berlin",
                    "time_of_day": {"active_bits": 6}, "weekend": {"active_bits": 2}},
    "device":      {"type": "category", "active_bits": 8}}}}'
if [ "$status" = 409 ]; then
  fail "a space \"pumps\" already exists on $url with other parameters: $(cat "$body")"
fi
expect_status "creating the space pumps" 201 200
check "active_bits is not the fields' sum, 40" 'j["parameters"]["active_bits"] == 40'
check "the space report does not say what the threshold means per field" \
  '"recognition_radius" in j["encoder"]["fields"]["temperature"]'

# 2. Normal states of pump-3, learnt on a weekday: a cool morning and a warm afternoon.
request POST /v1/spaces/pumps/patterns '{"patterns": [
    {"neuron": "pump-3", "id": "morning", "record": {"temperature": 58.0, "vibration": 0.3,
     "time": "2026-12-02T09:00:00+01:00", "device": "pump-3"}},
    {"neuron": "pump-3", "id": "afternoon", "record": {"temperature": 66.0, "vibration": 0.5,
     "time": "2026-12-02T15:00:00+01:00", "device": "pump-3"}}]}'
expect_status "storing the normal readings" 200
check "the batch did not store two readings" 'len(j["results"]) == 2'

# 3. A reading close to the morning one: recognised, and the fields say why.
request POST /v1/spaces/pumps/query '{"record": {"temperature": 58.6, "vibration": 0.3,
    "time": "2026-12-03T09:20:00+01:00", "device": "pump-3"}}'
expect_status "the query" 200
check "the noisy morning reading matched nothing" 'len(j["matches"]) > 0'
check "it is not recognised as pump-3's morning" \
  'j["matches"][0]["neuron"] == "pump-3" and j["matches"][0]["pattern"] == "morning"'
check "the match has no per-field breakdown summing to its overlap" \
  'sum(j["matches"][0]["fields"].values()) == j["matches"][0]["overlap"]'

# 4. An unusual reading of the same pump: hot, shaking, on a Sunday night. Nothing matches.
request POST /v1/spaces/pumps/query '{"record": {"temperature": 85.0, "vibration": 2.4,
    "time": "2026-12-06T03:00:00+01:00", "device": "pump-3"}}'
expect_status "the unusual query" 200
check "the unusual reading matched a normal state" 'j["matches"] == []'

echo "pumps: every answer as the README says ($url)"
