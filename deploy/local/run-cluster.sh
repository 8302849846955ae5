#!/usr/bin/env bash
# Three rempart nodes on this machine behind HAProxy, on the Redis and
# PostgreSQL at 127.0.0.1 (see README, "Run a cluster"). Logs and data in
# ./rempart-cluster; Ctrl-C stops everything.
set -euo pipefail
cd "$(dirname "$0")/../.."
dir=rempart-cluster
mkdir -p "$dir"
# The nodes share two keys: the signing keys' key-encryption key and the
# journal's key. Made once and kept, since what they sealed outlives a run.
for k in kek journal-key; do
  [ -s "$dir/$k" ] || (umask 077; head -c 32 /dev/urandom | base64 > "$dir/$k")
done
export REMPART_KEYS_KEK="$(cat "$dir/kek")" REMPART_JOURNAL_KEY="$(cat "$dir/journal-key")"
go build -o "$dir/rempart" ./cmd/rempart
pids=()
trap 'kill "${pids[@]}" 2>/dev/null; wait' EXIT INT TERM
for n in 1 2 3; do
  "$dir/rempart" serve --config deploy/local/node.yaml --listen 127.0.0.1:808$n --ops-listen 127.0.0.1:909$n \
    --data-dir "$dir/node$n" > "$dir/node$n.log" 2>&1 &
  pids+=($!)
done
for n in 1 2 3; do
  until curl -fs -o /dev/null "http://127.0.0.1:909$n/readyz"; do sleep 0.2; done
  echo "node $n ready: public 127.0.0.1:808$n, ops 127.0.0.1:909$n, log $dir/node$n.log"
done
haproxy="$(command -v haproxy || echo /usr/sbin/haproxy)"
"$haproxy" -db -f deploy/local/haproxy.cfg > "$dir/haproxy.log" 2>&1 &
pids+=($!)
until curl -fs -o /dev/null http://127.0.0.1:8080/.well-known/openid-configuration; do sleep 0.2; done
echo "cluster up: http://127.0.0.1:8080 (HAProxy, round robin) — Ctrl-C stops it"
wait
