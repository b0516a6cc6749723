# Calls after the start: (START=1: start run.sh with setsid) watch for LIMIT s or until DONES (default 1) scripts
# have written DONE (2 where two students.sh share the GPU: the first DONE is not the other's end), then pack the
# newest checkpoint of each run named in PACK into $OUT (one 62 MiB state per call fits) with the logs.
# PACK unset: the one run there is, so that every call brings its state home and a machine lost between two calls
# costs the updates of one call, not of the allocation (allocation 21 lost 7,000 updates that way). PACK= : none.
export PYTHONPATH=/tmp/site
T0=$(date +%s); R=${R:-/tmp/runs}; LIMIT=${LIMIT:-500}; mkdir -p $R
if [ -n "$START" ]; then setsid nohup bash /tmp/${SCRIPT:-run.sh} > /tmp/run.txt 2>&1 < /dev/null & sleep 2; fi
# A watch call that lands on a fresh machine (the lease went back between calls) finds no run: stop at once
# instead of watching nothing for LIMIT seconds of device time (session 6 lost 541 s that way).
if [ -z "$START" ] && [ ! -f $R/stage ]; then echo "no run on this machine (a fresh one?): nothing to watch"; exit 3; fi
while [ $(( $(date +%s) - T0 )) -lt $LIMIT ] && [ "$(grep -c DONE $R/stage 2>/dev/null)" -lt "${DONES:-1}" ]; do
  sleep 30; echo "--- $(( $(date +%s) - T0 )) s: $(tail -1 $R/stage 2>/dev/null)"
  for f in $R/*/log.jsonl; do echo "$f: $(grep '"event": "train"' $f | tail -1 | cut -c20-140)"; done
  for f in $R/*/log.jsonl; do grep '"event": "valid"' $f | tail -1 | cut -c20-330; done
  grep -il "error\|traceback" $R/*.txt /tmp/run.txt 2>/dev/null | head -3
  nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader | tr '\n' ' '; echo
done
cat $R/stage
RUNS=$(ls -d $R/*/ 2>/dev/null | xargs -r -n1 basename)
[ -z "${PACK+set}" ] && [ $(echo "$RUNS" | grep -c .) = 1 ] && PACK=$RUNS
[ -z "$PACK" ] && [ -n "$RUNS" ] && echo "warning: PACK names no run: this call brings no state home ($(echo $RUNS))"
cd ${REPO:-/tmp/repo}
for n in $PACK; do
  [ -f $R/$n/checkpoint.pt ] && cp $R/$n/checkpoint.pt /tmp/pack-$n.pt && rm -rf /tmp/packed-$n && \
    python3 teacher.py pack /tmp/pack-$n.pt /tmp/packed-$n && mkdir -p $OUT/$n && cp /tmp/packed-$n/* $OUT/$n/
done
tar -czf $OUT/logs.tgz -C $R --exclude='*.pt' --exclude='*.tmp' . ; ls -la $OUT $OUT/*
# (the compile caches: cc.sh, in parts under 16 MiB; one tar of them was too big to come back)
