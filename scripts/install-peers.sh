#!/usr/bin/env sh
# Installs the servers `deno task bench` compares Relayr with: nats-server and
# redis-server, from Debian/Ubuntu apt, only when they are missing (safe to run
# again). The bench starts its own instances on free ports and stops them; it
# never uses a packaged service. Tests never need either server.
set -eu

missing=""
for bin in nats-server redis-server; do
  if command -v "$bin" >/dev/null 2>&1 || [ -x "/usr/sbin/$bin" ] || [ -x "/usr/bin/$bin" ]; then
    echo "$bin: installed"
  else
    missing="$missing $bin" # the Debian packages are named after their binaries
  fi
done
[ -z "$missing" ] && exit 0

if ! command -v apt-get >/dev/null 2>&1; then
  echo "no apt-get here: install$missing with your package manager" >&2
  exit 1
fi
sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
echo "installing$missing"
$sudo apt-get update -qq
# shellcheck disable=SC2086 # $missing is a list of package names
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends $missing
