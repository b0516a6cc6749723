# Every upload call: the carried .xferN folders into /tmp/data and .state/* into /tmp/state (no call replaces these).
T0=$(date +%s)
mkdir -p /tmp/data /tmp/state; cp .carry/*.sh /tmp/
for d in .xfer*; do [ -d "$d" ] && cp -r "$d"/. /tmp/data/ && echo "staged $d: $(find $d -type f | wc -l) files"; done
[ -d .state ] && cp -r .state/. /tmp/state/ && find /tmp/state -type f | sort | tr '\n' ' ' && echo
echo "data now: $(find /tmp/data -name '*.flac' | wc -l) files, $(du -sm /tmp/data | cut -f1) MB; $(( $(date +%s) - T0 )) s"
for d in speech/libri speech/lj noise valid; do echo "  $d $(find /tmp/data/$d -name '*.flac' 2>/dev/null | wc -l)"; done
# The compile caches' parts (.cc, from cc.sh) into $CACHES once all of them are here and whole, never over caches there.
CACHES=${CACHES:-/tmp/cc}
[ -d .cc ] && mkdir -p /tmp/ccin && cp .cc/* /tmp/ccin/
if [ -f /tmp/ccin/SHA256SUMS ] && [ ! -d "$CACHES" ]; then
  if (cd /tmp/ccin && sha256sum -c --quiet SHA256SUMS > /dev/null 2>&1); then
    cat /tmp/ccin/cc.tgz.* | tar -xzf - -C "$(dirname "$CACHES")" &&
      echo "compile caches: $(du -sm "$CACHES" | cut -f1) MB in $CACHES"
  else echo "compile caches: $(ls /tmp/ccin | grep -c cc.tgz) parts here, not all of them whole yet"; fi
fi
