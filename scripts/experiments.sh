#!/usr/bin/env bash
# Reruns the measurements of EXPERIMENTS.md: two templates x calculator off/on, every selection strategy scored on
# the same generations. Results (one JSONL per run, resumable) and summaries go to $OUT; a markdown table is printed.
#
#   scripts/experiments.sh                                  # embedded model, GSM8K test 0..200
#   QUESTIONS=0..50 scripts/experiments.sh                  # fewer questions
#   OUT=bloom560 scripts/experiments.sh --model bigscience/bloom-560m --dtype bf16
#   OUT=bloom7b scripts/experiments.sh --endpoint http://localhost:8080   # a remote engine, once it exists
#
# Extra arguments go to every `cotscope eval` (a model, --threads, ...). Needs jq for the table.
set -euo pipefail
cd "$(dirname "$0")/.."

QUESTIONS=${QUESTIONS:-0..200}
TEMPLATES=${TEMPLATES:-"wei-8shot annot1-4shot"}
OUT=${OUT:-experiments}
BIN=${BIN:-target/release/cotscope}
SELECT=majority,weighted,verified,judge

if [ ! -x "$BIN" ]; then
    cargo build --release --locked
fi
mkdir -p "$OUT"

for template in $TEMPLATES; do
    for calc in off on; do
        flags=()
        [ "$calc" = on ] && flags+=(--calculator)
        run="$OUT/$template-calculator-$calc"
        echo "== $template, calculator $calc" >&2
        # ${flags[@]+...}: bash before 4.4 calls an empty array unbound under `set -u`.
        "$BIN" eval --template "$template" --questions "$QUESTIONS" --paths 5 --temperature 0.7 --seed 1 \
            --max-new-tokens 128 --select "$SELECT" ${flags[@]+"${flags[@]}"} --out "$run.jsonl" --json "$@" \
            >"$run.summary.json"
    done
done

echo "| template | calculator | questions | paths | arithmetic_error (paths) | strategy | accuracy | 95% Wilson | right where majority wrong | wrong where majority right | McNemar p |"
echo "|---|---|---|---|---|---|---|---|---|---|---|"
for template in $TEMPLATES; do
    for calc in off on; do
        s="$OUT/$template-calculator-$calc.summary.json"
        arith=$(jq -r '[.failures[] | select(.[0] == "arithmetic_error") | .[1]][0] as $n | "\($n) (\($n * 1000 / .paths | round / 10)%)"' "$s")
        jq -r --arg t "$template" --arg c "$calc" --arg a "$arith" '
            . as $s | .strategies[] |
            "| \($t) | \($c) | \($s.questions) | \($s.paths) | \($a) | \(.strategy) | \(.correct)/\(.questions) = \(.accuracy * 1000 | round / 10)% | [\(.wilson95.low * 1000 | round / 10)%, \(.wilson95.high * 1000 | round / 10)%] | \(.right_where_majority_wrong) | \(.wrong_where_majority_right) | \(.mcnemar_p * 1000 | round / 1000) |"' "$s"
    done
done

# The ceiling of any selection strategy: questions where at least one path's answer is the gold one
# (answers compared as numbers after dropping `$` and `,`).
echo
echo "| template | calculator | questions | some path right (selection ceiling) |"
echo "|---|---|---|---|"
for template in $TEMPLATES; do
    for calc in off on; do
        jq -rs --arg t "$template" --arg c "$calc" '
            def num: if . == null then null else (gsub("[$,]"; "") | tonumber? // null) end;
            (map(select((.gold | num) as $g | [.paths[].answer | num] | index($g) != null)) | length) as $k
            | "| \($t) | \($c) | \(length) | \($k) (\($k * 1000 / length | round / 10)%) |"' \
            "$OUT/$template-calculator-$calc.jsonl"
    done
done
