#!/usr/bin/env bash
# Installs the system programs the test suite uses, when they are missing (idempotent; Debian/Ubuntu, apt-get):
#   Orthanc   (package orthanc)     the PACS the DICOM node tests send results to (tests start their own instance)
#   dciodvfy  (package dicom3tools) the DICOM object validator of the DICOM output tests
# Needs root (CI runs it as root) or sudo. Where it cannot install (no apt-get, no root), it says so and exits 0: the
# tests that need a missing program skip and name it.
set -euo pipefail
declare -A need=([Orthanc]=orthanc [dciodvfy]=dicom3tools)
missing=()
for bin in "${!need[@]}"; do
  command -v "$bin" >/dev/null 2>&1 || missing+=("${need[$bin]}")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "install_system_deps: no apt-get here; install ${missing[*]} by hand (their tests are skipped)" >&2
  exit 0
fi
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    sudo="sudo -n"
  else
    echo "install_system_deps: not root and no sudo; install ${missing[*]} by hand (their tests are skipped)" >&2
    exit 0
  fi
fi
# The orthanc package would start a system service: the tests never use it, so keep services from starting while
# installing (the policy-rc.d convention), unless the machine already has a policy of its own.
policy=/usr/sbin/policy-rc.d
added_policy=0
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' | $sudo tee "$policy" >/dev/null
  $sudo chmod +x "$policy"
  added_policy=1
fi
trap '[ "$added_policy" = 1 ] && $sudo rm -f "$policy"' EXIT
echo "install_system_deps: installing ${missing[*]}" >&2
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
