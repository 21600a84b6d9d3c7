#!/usr/bin/env bash
# Runs every test program (build/tests/test_*), every shell test
# (tests/test_*.sh) and every Python script (tests/py/test_*.py), counts
# PASS/FAIL lines and ends with the line "N passed, N failed". Exit status
# is non-zero when anything failed or a program crashed.
set -u
BUILD=${BUILD:-build}
PYTHON=${PYTHON:-/usr/bin/python3}
export SEGDA_BUILD=$BUILD SEGDA_BIN=$BUILD/segda
pass=0; fail=0; skip=0; crashed=()
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT

run_one() {  # name, command...
  local name=$1; shift
  local log="$tmp/$(basename "$name").log"
  local t0=$SECONDS
  "$@" >"$log" 2>&1; local rc=$?
  local p f s
  p=$(grep -c '^PASS ' "$log"); f=$(grep -c '^FAIL ' "$log"); s=$(grep -c '^SKIP ' "$log")
  pass=$((pass + p)); fail=$((fail + f)); skip=$((skip + s))
  if [ $rc -ne 0 ] || [ "$f" -gt 0 ]; then
    if [ "$f" -eq 0 ]; then fail=$((fail + 1)); crashed+=("$name (exit $rc)"); fi
    echo "== $name: FAILED (exit $rc, $((SECONDS - t0))s)"; cat "$log"
  else
    echo "== $name: $p passed${s:+, $s skipped} ($((SECONDS - t0))s)"
    grep '^SKIP ' "$log" || true
  fi
}

filter=${TEST_FILTER:-}
for t in "$BUILD"/tests/test_*; do
  [ -x "$t" ] || continue
  case "$t" in *.d|*.o) continue;; esac
  [ -n "$filter" ] && [[ "$t" != *$filter* ]] && continue
  run_one "$t" "$t"
done
# shell tests (make install, the README's quick start): they drive the
# built command and the Makefile themselves
for t in tests/test_*.sh; do
  [ -f "$t" ] || continue
  [ -n "$filter" ] && [[ "$t" != *$filter* ]] && continue
  run_one "$t" bash "$t"
done
if [ -n "${SEGDA_ASAN:-}" ]; then
  echo "== tests/py: skipped under ASan (the parity scripts load the unsanitised libsegda.so)"
else
  for t in tests/py/test_*.py; do
    [ -f "$t" ] || continue
    [ -n "$filter" ] && [[ "$t" != *$filter* ]] && continue
    run_one "$t" "$PYTHON" "$t"
  done
fi
for c in "${crashed[@]+"${crashed[@]}"}"; do echo "crashed: $c"; done
echo "$pass passed, $fail failed, $skip skipped"
[ "$fail" -eq 0 ]
