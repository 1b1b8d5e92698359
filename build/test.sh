#!/usr/bin/env bash
# Builds the solution and runs every test project. This is the README's test command and what CI runs.
# It installs nothing system-wide unless a test stack needs it (none does yet), and ends with one summary line.
set -euo pipefail
cd "$(dirname "$0")/.."

export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 DOTNET_SKIP_FIRST_TIME_EXPERIENCE=1

dotnet build PromptFaces.sln -c Release -nologo -v:minimal

log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
dotnet test PromptFaces.sln -c Release --no-build -nologo 2>&1 | tee "$log" || status=$?

# Sum the per-assembly lines ("Passed!  - Failed: 0, Passed: 12, Skipped: 0, Total: 12 ...").
count() { grep -oE "$1: +[0-9]+" "$log" | awk '{ s += $2 } END { print s + 0 }'; }
passed=$(count Passed); failed=$(count Failed); skipped=$(count Skipped)
echo "${passed:-0} passed, ${failed:-0} failed, ${skipped:-0} skipped"
if [ "${passed:-0}" = "0" ]; then
  echo "no test ran" >&2
  exit 1
fi
exit $status
