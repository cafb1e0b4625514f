# Sourced by stage2_results.sh and stage3_results.sh (needs $OUT).
# copy_run SRC DST: a copy of the finished run $OUT/SRC as $OUT/DST (links followed) without its evaluation/ (the
# scores of the original's weights), so the copy can be re-exported, re-selected or re-calibrated (each of which
# rewrites report.json) while the original stays as it was. A copy already made is kept (the command that follows
# it resumes); a half-made one (DST.partial) is made again.
copy_run() {
  local src=$1 dst=$2
  if [[ ! -d $OUT/$dst ]]; then
    rm -rf "$OUT/$dst.partial"
    cp -rL "$OUT/$src" "$OUT/$dst.partial"
    rm -rf "$OUT/$dst.partial/evaluation"
    mv "$OUT/$dst.partial" "$OUT/$dst"
  fi
}
