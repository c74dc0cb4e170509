#!/usr/bin/env bash
# Debian packages the whole test suite uses, installed when missing (as root; others are told what to run):
# PostgreSQL (the tracking-database load test), Chromium (the MLflow UI check), iproute2 (hosts in
# network namespaces), FreeDict dictionaries (WECHSEL's bilingual dictionaries for de, da, ru).
set -euo pipefail
packages=(postgresql chromium iproute2 dict-freedict-eng-deu dict-freedict-eng-dan dict-freedict-eng-rus)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
  echo "system packages missing: ${missing[*]} (as root: apt-get install ${missing[*]}); the tests that need them skip" >&2
  exit 0
fi
echo "installing ${missing[*]}"
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
