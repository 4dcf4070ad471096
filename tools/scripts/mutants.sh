#!/usr/bin/env bash
# Mutation testing (cargo-mutants) of the code where decisions live: the
# services' domain rules, the envelope codec and headers, the API's
# validation, the consumer runtime's pure parts (offsets, lanes, the retry
# schedule, the circuit breaker) and the gateway's stream window. Each mutant is a small change to one
# function (a return value, an operator, a deleted statement); the unit tests
# of its crate must fail on it. The scope and test arguments are in
# .cargo/mutants.toml.
#
#   tools/scripts/mutants.sh             every mutant in scope (make mutants)
#   tools/scripts/mutants.sh --in-diff   only functions changed since the
#                                        commit in .ci/mutants-base (CI), within
#                                        MUTANTS_BUDGET seconds (default 600)
#   tools/scripts/mutants.sh --install  only install cargo-mutants (CI does it in
#                                        the background while the tests run)
#   MUTANTS_SHARD=k/n tools/scripts/mutants.sh
#                                        the k-th of n shards of every mutant
#                                        (0-based): a full run in parts
#
# After a full run passes (every shard), move .ci/mutants-base to the commit
# it ran on, so CI's in-diff run stays small enough for its budget.
#
# Mutants run in place (cargo-mutants restores each file after it): do not
# edit the tree while it runs. Results go to mutants.out/ (missed.txt,
# caught.txt, unviable.txt, timeout.txt); a missed mutant fails the run.
set -euo pipefail
cd "$(dirname "$0")/../.."

version=27.1.0
CACHE="${ORDERFLOW_CACHE:-$HOME/.cache/orderflow}"
. tools/scripts/lib/tool-cache.sh
bin="$CACHE/tools/bin/cargo-mutants"
cargo_tool_install cargo-mutants "$version"
[ "${1:-}" != --install ] || exit 0
# A target folder of its own unless MUTANTS_TARGET_DIR names one (CI: the
# tests' own, which already holds these crates' dependencies built). With
# incremental compilation every mutant leaves build state behind, which is
# dropped after the run (it would fill the disk otherwise).
export CARGO_TARGET_DIR="${MUTANTS_TARGET_DIR:-$CACHE/target-mutants}"
trap 'rm -rf "$CARGO_TARGET_DIR/debug/incremental"' EXIT
# A property test failing on a mutant must not leave a regression file in the tree.
export PROPTEST_DISABLE_FAILURE_PERSISTENCE=1

args=(--in-place --no-shuffle --baseline=skip --timeout 180 --build-timeout 600)
if [ -n "${MUTANTS_SHARD:-}" ]; then
  args+=(--shard "$MUTANTS_SHARD")
fi
budget=0
if [ "${1:-}" = "--in-diff" ]; then
  base=$(tr -d '[:space:]' < .ci/mutants-base)
  if ! git cat-file -e "$base^{commit}" 2>/dev/null; then
    echo "mutants: .ci/mutants-base names $base, which this clone does not have" >&2
    exit 1
  fi
  diff=$(mktemp)
  trap 'rm -f "$diff"; rm -rf "$CARGO_TARGET_DIR/debug/incremental"' EXIT
  git diff "$base" HEAD -- '*.rs' > "$diff"
  n=$("$bin" mutants --list "${args[@]}" --in-diff "$diff" | wc -l)
  echo "mutants: $n mutant(s) in functions changed since $base"
  [ "$n" -gt 0 ] || exit 0
  args+=(--in-diff "$diff")
  budget=${MUTANTS_BUDGET:-600}
fi

# The tests must pass unmutated first (the baseline is skipped below for speed).
cargo test --quiet --lib -p orderflow-order -p orderflow-inventory -p orderflow-shipping \
  -p orderflow-notification -p orderflow-payment -p orderflow-envelope -p orderflow-api \
  -p orderflow-runtime -p orderflow-gateway -p orderflow-auth > /dev/null

status=0
if [ "$budget" -gt 0 ]; then
  timeout --signal=INT "$budget" "$bin" mutants "${args[@]}" || status=$?
else
  "$bin" mutants "${args[@]}" || status=$?
fi
for outcome in caught missed timeout unviable; do
  printf '%-8s %s\n' "$outcome" "$(wc -l < "mutants.out/$outcome.txt" 2>/dev/null || echo 0)"
done
caught=$(wc -l < mutants.out/caught.txt)
missed=$(wc -l < mutants.out/missed.txt)
if [ $((caught + missed)) -gt 0 ]; then
  echo "mutation score: $caught of $((caught + missed)) viable mutants caught ($((100 * caught / (caught + missed)))%)"
fi
# cargo-mutants exits 2 when a mutant was missed, 3 when one timed out (a
# hang the tests caught), 0 when every mutant was caught.
if [ "$missed" -gt 0 ]; then
  echo "mutants: missed mutants (mutants.out/missed.txt): add a test that fails on each, or exclude it in .cargo/mutants.toml with the reason"
  exit 2
fi
case $status in
  0|2|3) ;;
  124|130)
    # A run that could not finish proves nothing about the mutants it did not
    # reach: it fails, so a large diff cannot pass the gate unexamined.
    echo "mutants: the ${budget}s budget ran out before every mutant was tested; run tools/scripts/mutants.sh (make mutants) and move .ci/mutants-base to the commit it passed on" >&2
    exit 1 ;;
  *) exit "$status" ;;
esac
