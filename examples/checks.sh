# The helpers the example sessions share (sourced, not run): `request` sends a call and prints
# it with its answer, `expect_status` and `check` stop the session with a one-line reason (exit 1)
# at the first answer that is not what the README says. The sourcing script sets $session (its
# name in messages); DENDRITE_URL points it at a service (default http://127.0.0.1:8080).

url=${DENDRITE_URL:-http://127.0.0.1:8080}
url=${url%/}
body=$(mktemp)
trap 'rm -f "$body"' EXIT

fail() {
  echo "$session: FAILED: $*" >&2
  exit 1
}

command -v curl >/dev/null || fail "curl is not installed"
command -v python3 >/dev/null || fail "python3 is not installed (it checks the answers)"

# request METHOD PATH [JSON]: sends it, prints it with its answer, leaves the status in $status
# and the answer in the file $body.
request() {
  local method=$1 path=$2
  local args=(-s -o "$body" -w '%{http_code}' -X "$method" "$url$path")
  if [ $# -ge 3 ]; then args+=(-H 'content-type: application/json' -d "$3"); fi
  status=$(curl "${args[@]}") \
    || fail "no answer from $url ($method $path): is the service running there? (cargo run --release, or set DENDRITE_URL)"
  echo "==> $method $path: $status"
  cat "$body"
  echo
}

# expect_status WHAT ALLOWED...: fails unless $status is one of ALLOWED.
expect_status() {
  local what=$1 allowed
  shift
  for allowed in "$@"; do
    if [ "$status" = "$allowed" ]; then return 0; fi
  done
  fail "$what: expected status $(echo "$@" | sed 's/ / or /g'), got $status: $(cat "$body")"
}

# check WHAT EXPRESSION: fails unless the Python EXPRESSION, on the answer parsed as `j`, is true.
check() {
  python3 - "$body" "$2" <<'PY' || fail "$1; the answer was: $(cat "$body")"
import json, sys
try:
    with open(sys.argv[1]) as answer:
        j = json.load(answer)
    ok = bool(eval(sys.argv[2], {}, {"j": j}))
except Exception:
    ok = False
sys.exit(0 if ok else 1)
PY
}
