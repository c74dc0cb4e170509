#!/usr/bin/env bash
# MLflow's PostgreSQL database on the head of cluster.yaml, installed and initialised once (run by `ray up`).
# Usage: head_postgres.sh BACKEND_STORE_URI. Only the local default (a socket URI, host=/var/run/postgresql)
# is set up here; an external server's URI needs nothing on the head.
# The data directory lives on the shared storage, so the runs outlive the head (`ray down`, a new head)
# as the old sqlite file did; one server process writes it (NFS's locking is not involved).
set -euo pipefail
uri=$1
data=/mnt/cluster_storage/postgresql
case "$uri" in
  *host=/var/run/postgresql*) ;;
  *) echo "MLflow database: external ($(echo "$uri" | sed -E 's#//([^:@/]+):[^@]*@#//\1:***@#')), nothing to set up"; exit 0 ;;
esac
dpkg -s postgresql > /dev/null 2>&1 || (sudo apt-get update -q && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql)
version=$(ls /usr/lib/postgresql | sort -n | tail -1)
if ! sudo pg_lsclusters -h | grep -q " $data "; then
  # Debian's default cluster on the local disk gives way to one on the shared storage (an existing
  # data directory there, from an earlier head, is taken over as it is).
  sudo pg_dropcluster --stop "$version" main || true
  sudo mkdir -p "$data" && sudo chown postgres:postgres "$data"
  sudo pg_createcluster -d "$data" -p 5432 "$version" main
fi
sudo pg_ctlcluster "$version" main status > /dev/null || sudo pg_ctlcluster "$version" main start
# The ubuntu user reaches its database through the local socket with peer authentication: no password.
sudo -u postgres psql -tAc "select 1 from pg_roles where rolname = 'ubuntu'" | grep -q 1 || sudo -u postgres createuser ubuntu
sudo -u postgres psql -tAc "select 1 from pg_database where datname = 'mlflow'" | grep -q 1 || sudo -u postgres createdb -O ubuntu mlflow
