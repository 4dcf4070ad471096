# Sourced by the scripts that build a tool once into $CACHE/tools
# (observability-tools.sh, kube-tools.sh, chart-tools.sh, mutants.sh). make
# test builds these in the background while its first tiers run
# (test-all.sh), so a tier may ask for a tool that is being built right now:
# each build holds a lock, and a second caller waits for the first and then
# finds the tool made. The sourcing script sets CACHE.

# tool_lock NAME: holds $CACHE/tools/.NAME.lock until the (sub)shell exits,
# waiting, and saying so, while another process holds it.
tool_lock() {
  mkdir -p "$CACHE/tools"
  exec 9>"$CACHE/tools/.$1.lock"
  if ! flock -n 9; then
    echo "$1: another process is building it (make test's background builds log to $CACHE/tools/background.log); waiting" >&2
    flock 9
  fi
}

# go_build_cache DIR: the Go build cache for one build. make test shares one
# (ORDERFLOW_GOCACHE) across its tool builds, which have the standard library
# and many modules in common; alone, a build uses DIR, which its caller
# removes. Either way no Go build cache is left behind (Kubernetes' is 4 GB).
go_build_cache() {
  echo "${ORDERFLOW_GOCACHE:-$1}"
}

# cargo_tool_install CRATE VERSION: the cargo subcommand CRATE (cargo-NAME)
# at VERSION into $CACHE/tools/bin, from the crate registry, once.
cargo_tool_install() (
  local crate=$1 version=$2
  local bin="$CACHE/tools/bin/$crate"
  tool_lock "$crate"
  "$bin" "${crate#cargo-}" --version 2>/dev/null | grep -q "$version" && exit 0
  echo "installing $crate $version into $CACHE/tools" >&2
  # In a temporary target folder of its own: CARGO_TARGET_DIR would send it
  # into the tests' one, whose lock a build running meanwhile holds.
  # Not optimised: these tools spend their time waiting for the tests they
  # run. On two cores cargo-nextest 0.9.151 builds in 160 s (205 s of CPU)
  # instead of 344 (559), cargo-mutants 27.1.0 in 43 s instead of 91 at
  # opt-level 1; a run of 23 tests took 1.14 s instead of 1.01, listing
  # every mutant 1.7 s instead of 0.5.
  env -u CARGO_TARGET_DIR CARGO_PROFILE_RELEASE_OPT_LEVEL=0 \
    cargo install --quiet --locked --version "$version" --root "$CACHE/tools" "$crate"
)
