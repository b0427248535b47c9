#!/usr/bin/env bash
# Creates the secret files the kustomization's secretGenerator reads (deploy/kubernetes/secrets/),
# each a random 32-byte hex string, mode 0600, without a trailing newline (a newline would become
# part of the password). Existing files are kept, so re-running never rotates a secret by accident;
# delete a file to rotate it, then `kubectl apply -k deploy/kubernetes` (the hashed Secret name
# rolls every workload that uses it). The files are git-ignored.
set -euo pipefail
dir="$(cd "$(dirname "$0")" && pwd)/secrets"
mkdir -p "$dir"
chmod 0700 "$dir"
umask 077
for name in clickhouse-collector-password clickhouse-query-password clickhouse-migrate-password \
  clickhouse-cluster-secret ingest-token api-token; do
  f="$dir/$name"
  if [ -s "$f" ]; then
    echo "kept      $f"
  else
    head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$f"
    echo "generated $f"
  fi
done
echo "Senders need the ingest token ($dir/ingest-token), API clients and the UI the api token."
