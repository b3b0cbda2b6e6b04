# Shared by the recipes, sourced from the repository root: `source train/recipes/lib.sh`.

timed() {  # timed NAME COMMAND... : run, log to $RUNS/NAME.log, record the wall time
  local name=$1 start=$SECONDS
  shift
  mkdir -p "$RUNS/$name"
  "$@" >"$RUNS/$name.log" 2>&1
  echo $((SECONDS - start)) >"$RUNS/$name/seconds.txt"
  echo "$name: $((SECONDS - start)) s"
}
