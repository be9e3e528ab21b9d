#!/bin/sh
# An OCI runtime for podman on machines that withhold CAP_SYS_RESOURCE from
# root (some VM sandboxes, this project's CI among them): runc's setrlimit of
# the container's RLIMIT_NOFILE/NPROC fails there with EPERM, so this wrapper
# drops the rlimits from the bundle's config.json (create) and from the
# process spec of `exec` (--process), then runs runc. The
# container then inherits the engine's limits. Used only by
# tests/container_test.ts, and only when a plain `podman run` fails that way.
set -eu
runc="$(command -v runc || echo /usr/sbin/runc)"
strip() {
  python3 -c 'import json, sys
p = sys.argv[1]
c = json.load(open(p))
c.get("process", c).pop("rlimits", None)
json.dump(c, open(p, "w"))' "$1"
}
prev=""
for a in "$@"; do
  case "$prev" in
  --bundle) [ -f "$a/config.json" ] && strip "$a/config.json" ;;
  --process) [ -f "$a" ] && strip "$a" ;;
  esac
  case "$a" in
  --bundle=*) [ -f "${a#--bundle=}/config.json" ] && strip "${a#--bundle=}/config.json" ;;
  --process=*) [ -f "${a#--process=}" ] && strip "${a#--process=}" ;;
  esac
  prev="$a"
done
exec "$runc" "$@"
