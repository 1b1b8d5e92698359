#!/usr/bin/env bash
# Builds the solution and runs every test project. This is the README's test command and what CI runs.
# The browser tests (tests/PromptFaces.EndToEnd) need Chromium: when it is missing, it is installed from Debian's
# packages (as root, or through sudo). It ends with one summary line.
set -euo pipefail
cd "$(dirname "$0")/.."

export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 DOTNET_SKIP_FIRST_TIME_EXPERIENCE=1

chromium=${PROMPTFACES_CHROMIUM:-/usr/bin/chromium}
if [ ! -x "$chromium" ]; then
  echo "Chromium is missing at $chromium: installing Debian's chromium package for the browser tests"
  if [ "$(id -u)" = 0 ]; then sudo=""; elif command -v sudo >/dev/null; then sudo="sudo"; else
    echo "Cannot install Chromium without root: run 'apt-get install -y chromium' as root, or set PROMPTFACES_CHROMIUM" >&2
    exit 1
  fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium >/dev/null
fi

dotnet build PromptFaces.sln -c Release -nologo -v:minimal

log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
dotnet test PromptFaces.sln -c Release --no-build -nologo 2>&1 | tee "$log" || status=$?

# Sum the per-assembly lines ("Passed!  - Failed: 0, Passed: 12, Skipped: 0, Total: 12 ...").
count() { grep -oE "$1: +[0-9]+" "$log" | awk '{ s += $2 } END { print s + 0 }'; }
passed=$(count Passed); failed=$(count Failed); skipped=$(count Skipped)
echo "${passed:-0} passed, ${failed:-0} failed, ${skipped:-0} skipped"
echo "Browser screenshots and preview-latency figures: artifacts/e2e/"
if [ "${passed:-0}" = "0" ]; then
  echo "no test ran" >&2
  exit 1
fi
exit $status
