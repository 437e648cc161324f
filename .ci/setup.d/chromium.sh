# Sourced by .ci/run: Debian's chromium for the HTML report test (tests/report_cli.rs), which renders
# `cotscope report --format html` headless and checks the screenshot. Idempotent: installs only if missing.
if ! command -v chromium >/dev/null 2>&1; then
  (apt-get update -qq && apt-get install -y -qq chromium) >/dev/null 2>&1 \
    || (sudo apt-get update -qq && sudo apt-get install -y -qq chromium) >/dev/null 2>&1 \
    || echo "ci: could not install chromium; tests/report_cli.rs will fail under CI=true" >&2
fi
if command -v chromium >/dev/null 2>&1; then
  COTSCOPE_CHROMIUM="$(command -v chromium)"
  export COTSCOPE_CHROMIUM
fi
