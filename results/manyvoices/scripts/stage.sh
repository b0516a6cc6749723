# Every upload call: the carried .xferN folders into /tmp/data and .state/* into /tmp/state (no call replaces these).
T0=$(date +%s)
mkdir -p /tmp/data /tmp/state; cp .carry/*.sh /tmp/
for d in .xfer*; do [ -d "$d" ] && cp -r "$d"/. /tmp/data/ && echo "staged $d: $(find $d -type f | wc -l) files"; done
[ -d .state ] && cp -r .state/. /tmp/state/ && find /tmp/state -type f | sort | tr '\n' ' ' && echo
echo "data now: $(find /tmp/data -name '*.flac' | wc -l) files, $(du -sm /tmp/data | cut -f1) MB; $(( $(date +%s) - T0 )) s"
for d in speech/libri speech/lj noise valid; do echo "  $d $(find /tmp/data/$d -name '*.flac' 2>/dev/null | wc -l)"; done
