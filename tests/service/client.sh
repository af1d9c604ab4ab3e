#!/bin/sh
# A controller that is not Python: drives the co2twin service with curl only.
#   BASE=http://127.0.0.1:8000 [TOKEN=...] sh client.sh
# 1. queues an experiment and waits for it, then fetches its results as CSV;
# 2. starts a control session, runs a bang-bang voltage controller for 30 steps, stops it.
# Prints "ok <experiment id> <rows> <session steps> <last cell voltage>" and exits 0 on success.
set -eu
BASE="${BASE:?set BASE to the service URL}"
auth=""
if [ -n "${TOKEN:-}" ]; then auth="Authorization: Bearer $TOKEN"; fi
call() {  # call METHOD PATH [JSON]
  if [ $# -ge 3 ]; then
    curl -sS --fail-with-body -X "$1" -H "$auth" -H "Content-Type: application/json" \
      --data "$3" "$BASE$2"
  else
    curl -sS --fail-with-body -X "$1" -H "$auth" "$BASE$2"
  fi
}
field() {  # field NAME: the first "NAME": value of the JSON on stdin (numbers and plain strings)
  sed -n "s/.*\"$1\":\"\{0,1\}\([^,\"}]*\).*/\1/p" | head -n 1
}

job=$(call POST /api/experiments '{"name":"curl client","overrides":{"current":4.5,"duration":60,"record_every":5}}')
id=$(printf '%s' "$job" | field id)
tries=0
while :; do
  status=$(call GET "/api/experiments/$id" | field status)
  [ "$status" = done ] && break
  [ "$status" = failed ] && { echo "experiment $id failed" >&2; exit 1; }
  tries=$((tries + 1)); [ "$tries" -gt 600 ] && { echo "timeout" >&2; exit 1; }
  sleep 0.1
done
rows=$(call GET "/api/experiments/$id/results?format=csv" | tail -n +2 | wc -l | tr -d ' ')

session=$(call POST /api/sessions '{"scenario":{"name":"curl session","duration":120,"step":1}}')
sid=$(printf '%s' "$session" | field id)
current=5.0
voltage=0
step=0
while [ "$step" -lt 30 ]; do
  y=$(call POST "/api/sessions/$sid/advance" "{\"u\":{\"current\":$current},\"steps\":1}")
  voltage=$(printf '%s' "$y" | field reactor.cell_voltage)
  # bang-bang: hold the cell voltage near 3.7 V
  if [ "$(echo "$voltage > 3.7" | awk '{print ($1 > $3)}')" = 1 ]; then current=4.0; else current=6.0; fi
  step=$((step + 1))
done
call GET "/api/sessions/$sid/kpis" > /dev/null
call DELETE "/api/sessions/$sid" > /dev/null
echo "ok $id $rows $step $voltage"
