# cc.sh: the compile caches home, so that the next lease compiles the same graphs from them. students.sh and ddp.sh
# point Inductor (its FX-graph and AOTAutograd caches) and Triton at $CACHES (default /tmp/cc); a compile that finds
# its graphs there skips code generation. Run after a run's DONE: the first call (CC_FIRST=0) packs $CACHES once into
# /tmp/ccout (tar.gz in 15-MiB parts and SHA256SUMS); each call copies CC_COUNT parts (default 4) from CC_FIRST on
# with SHA256SUMS into $OUT/cc (a call brings back at most 64 MiB: CC_COUNT=1 beside a 40 MiB state from watch.sh).
# At home: keep every part in .cc/ (ignored). Up again: carry the parts by name, at most three per call beside the
# 15 MB tree (they gather in /tmp/ccin); stage.sh unpacks them into $CACHES once every part's checksum is right, and
# never over a $CACHES that exists.
set -e
# (CACHES, not CC: the device sets CC to its C compiler, and a script reading CC took /opt/gcc/bin/gcc for the caches)
CACHES=${CACHES:-/tmp/cc} FIRST=${CC_FIRST:-0}
[ -d "$CACHES" ] || { echo "cc.sh: no compile caches at $CACHES"; exit 1; }
if [ "$FIRST" = 0 ]; then
  rm -rf /tmp/ccout && mkdir -p /tmp/ccout
  tar -czf - -C "$(dirname "$CACHES")" "$(basename "$CACHES")" | split -b 15M -d -a 3 - /tmp/ccout/cc.tgz.
  (cd /tmp/ccout && sha256sum cc.tgz.* > SHA256SUMS)
fi
[ -f /tmp/ccout/SHA256SUMS ] || { echo "cc.sh: nothing packed on this machine yet: CC_FIRST=0 first"; exit 1; }
mkdir -p "$OUT/cc" && cp /tmp/ccout/SHA256SUMS "$OUT/cc/"
for f in $(ls /tmp/ccout/cc.tgz.* | tail -n +$((FIRST + 1)) | head -${CC_COUNT:-4}); do cp "$f" "$OUT/cc/"; done
echo "caches $(du -sm "$CACHES" | cut -f1) MB in $(ls /tmp/ccout/cc.tgz.* | wc -l) parts;" \
  "brought: $(ls "$OUT/cc" | tr '\n' ' ')"
