#!/usr/bin/env bash
# Fetch Debian's `prometheus` package WITHOUT installing it and unpack it under
# <repo>/.tools/prometheus, so `promtool` and `prometheus` can be used by tests
# and local runs without the package's postinst starting a server on 0.0.0.0:9090.
#
# Usage: deploy/local/prometheus.sh
# Prints (stdout, one per line): the absolute path of promtool, then of prometheus.
# Progress and errors go to stderr. Idempotent: does nothing if already unpacked.
#
# Environment:
#   CMDB_TOOLS_DIR          where to unpack (default: <repo>/.tools)
#   PROMETHEUS_CACHE_DIR    where the .deb is kept (default: $CMDB_TOOLS_DIR/cache)
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
tools_dir="${CMDB_TOOLS_DIR:-${repo_root}/.tools}"
cache_dir="${PROMETHEUS_CACHE_DIR:-${tools_dir}/cache}"
dest="${tools_dir}/prometheus"
promtool="${dest}/usr/bin/promtool"
prometheus="${dest}/usr/bin/prometheus"

log() { printf 'prometheus.sh: %s\n' "$*" >&2; }

is_ready() { [[ -x "${promtool}" && -x "${prometheus}" ]]; }

download_deb() {
  # apt-get download writes into the current directory.
  (cd "${cache_dir}" && apt-get download prometheus >&2)
}

fetch_and_unpack() {
  local deb tmp
  deb="$(ls -1t "${cache_dir}"/prometheus_*.deb 2>/dev/null | head -n1 || true)"
  if [[ -z "${deb}" ]]; then
    log "downloading Debian package 'prometheus' into ${cache_dir}"
    if ! download_deb; then
      log "download failed; running apt-get update and retrying"
      apt-get update >&2
      download_deb
    fi
    deb="$(ls -1t "${cache_dir}"/prometheus_*.deb | head -n1)"
  fi
  log "unpacking ${deb} into ${dest}"
  tmp="$(mktemp -d "${tools_dir}/prometheus.tmp.XXXXXX")"
  dpkg -x "${deb}" "${tmp}"
  rm -rf "${dest}"
  mv "${tmp}" "${dest}"
}

main() {
  mkdir -p "${tools_dir}" "${cache_dir}"
  if ! is_ready; then
    # Serialise concurrent callers (e.g. parallel test sessions).
    exec 9>"${tools_dir}/.prometheus.lock"
    flock 9
    is_ready || fetch_and_unpack
    flock -u 9
  fi
  if ! is_ready; then
    log "promtool/prometheus not found under ${dest}/usr/bin after unpacking"
    exit 1
  fi
  printf '%s\n' "${promtool}" "${prometheus}"
}

main "$@"
