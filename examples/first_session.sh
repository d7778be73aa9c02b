#!/usr/bin/env bash
# The README's "A first session", step by step, with the same requests, checking each answer:
# create the space "sensors" (2048 bits, 40 active), store the patterns "open-morning" and
# "open-evening" on the neuron "door", query a noisy copy of open-morning (8 of its 40 bits
# replaced), then read the neuron report and the space report. It prints every answer and stops
# with a one-line reason (exit 1) at the first one that is not what the README says.
#
# Re-runnable against the same server: a space, or a pattern, that already exists with the same
# parameters or bits is answered 200 instead of 201, and both are accepted.
#
# Usage: examples/first_session.sh   (needs curl and python3; start the service first, e.g.
#        `cargo run --release`; DENDRITE_URL points it at another one)
set -euo pipefail

session="first session"
# shellcheck source=examples/checks.sh
source "$(dirname "$0")/checks.sh"

# 1. The space: 2048 input bits, 40 of them active in each pattern; every other parameter default.
request PUT /v1/spaces/sensors '{"input_size": 2048, "active_bits": 40}'
if [ "$status" = 409 ]; then
  fail "a space \"sensors\" already exists on $url with other parameters: $(cat "$body") (delete it with curl -s -X DELETE $url/v1/spaces/sensors, or use another server)"
fi
expect_status "creating the space sensors" 201 200
check "the space's parameters are not input_size 2048, active_bits 40" \
  'j["parameters"]["input_size"] == 2048 and j["parameters"]["active_bits"] == 40'

# 2. Two patterns on the neuron "door", 40 distinct indices below 2048 each.
request POST /v1/spaces/sensors/neurons/door/patterns '{"id": "open-morning",
    "active": [66, 129, 138, 293, 297, 335, 388, 396, 521, 551, 634, 690, 706, 809,
    821, 853, 863, 948, 979, 995, 1050, 1094, 1215, 1222, 1225, 1234, 1289, 1300,
    1318, 1437, 1438, 1542, 1552, 1745, 1837, 1841, 1855, 1937, 1993, 2031]}'
expect_status "storing open-morning on door" 201 200
check "the store answered for another pattern than door's open-morning" \
  'j["neuron"] == "door" and j["id"] == "open-morning"'

request POST /v1/spaces/sensors/neurons/door/patterns '{"id": "open-evening",
    "active": [82, 122, 127, 144, 307, 381, 460, 529, 540, 625, 744, 755, 779, 813,
    1013, 1019, 1031, 1086, 1101, 1141, 1161, 1182, 1226, 1244, 1295, 1321, 1426, 1434,
    1441, 1463, 1481, 1486, 1524, 1545, 1612, 1716, 1797, 1889, 1923, 2011]}'
expect_status "storing open-evening on door" 201 200
check "the store answered for another pattern than door's open-evening" \
  'j["neuron"] == "door" and j["id"] == "open-evening"'

# 3. A noisy copy of open-morning: 8 of its 40 indices replaced by 8 others.
request POST /v1/spaces/sensors/query \
  '{"active": [129, 212, 293, 297, 335, 388, 396, 521, 551, 634, 690, 726, 750, 793,
    809, 821, 853, 863, 948, 995, 1050, 1064, 1094, 1215, 1222, 1225, 1234, 1289,
    1300, 1318, 1331, 1437, 1438, 1457, 1552, 1745, 1780, 1841, 1855, 2031]}'
expect_status "the query" 200
check "the query matched nothing" 'len(j["matches"]) > 0'
check "the query's first match is not the neuron door" 'j["matches"][0]["neuron"] == "door"'
check "the query's first match does not name the pattern open-morning (field \"pattern\")" \
  'j["matches"][0]["pattern"] == "open-morning"'
check "the query's answer has no \"segments_overlapped\"" '"segments_overlapped" in j'

# 4. The neuron report: its patterns, segments, false-match and miss probabilities.
request GET /v1/spaces/sensors/neurons/door
expect_status "the neuron report" 200
check "the neuron door does not hold 2 patterns" 'j["patterns"] == 2'
check "the neuron report has no \"false_miss_by_noise\"" '"false_miss_by_noise" in j'

# 5. The space report: its parameters, counts and the theory for them.
request GET /v1/spaces/sensors
expect_status "the space report" 200
check "the space report's theory has no \"max_patterns_per_segment\"" \
  '"max_patterns_per_segment" in j["theory"]'

echo "first session: every answer as the README says ($url)"
