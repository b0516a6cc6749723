# Calls after the start: (START=1: start run.sh with setsid) watch for LIMIT s or until DONE, then pack the newest
# checkpoint of each run in PACK ("small", "medium" or both) and the logs into $OUT.
export PYTHONPATH=/tmp/site
T0=$(date +%s); R=${R:-/tmp/runs}; LIMIT=${LIMIT:-500}; mkdir -p $R
if [ -n "$START" ]; then setsid nohup bash /tmp/run.sh > /tmp/run.txt 2>&1 < /dev/null & sleep 2; fi
while [ $(( $(date +%s) - T0 )) -lt $LIMIT ] && ! grep -q DONE $R/stage 2>/dev/null; do
  sleep 30; echo "--- $(( $(date +%s) - T0 )) s: $(tail -1 $R/stage 2>/dev/null)"
  for p in small medium; do [ -f $R/$p/log.jsonl ] && echo "$p: $(grep '"event": "train"' $R/$p/log.jsonl | tail -1 | cut -c20-140)"; done
  for p in small medium; do [ -f $R/$p/log.jsonl ] && grep '"event": "valid"' $R/$p/log.jsonl | tail -1 | cut -c20-330; done
  grep -il "error\|traceback" $R/*.txt /tmp/run.txt 2>/dev/null | head -3
  nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader | tr '\n' ' '; echo
done
cat $R/stage
cd ${REPO:-/tmp/repo}
for p in $PACK; do
  [ -f $R/$p/checkpoint.pt ] && cp $R/$p/checkpoint.pt /tmp/pack-$p.pt && rm -rf /tmp/packed-$p && \
    python3 teacher.py pack /tmp/pack-$p.pt /tmp/packed-$p && mkdir -p $OUT/$p && cp /tmp/packed-$p/* $OUT/$p/
done
tar -czf $OUT/logs.tgz -C $R --exclude='*.pt' --exclude='*.tmp' . ; ls -la $OUT $OUT/*
