# Calls 1.. : (call 1 with START=1: the rest of the speech, start p.sh with setsid) watch until DONE or LIMIT s,
# then pack whatever is there: checkpoints, scores, logs.
export PYTHONPATH=/tmp/site
T0=$(date +%s); R=/tmp/runs X=/tmp/export; LIMIT=${LIMIT:-560}
if [ -n "$START" ]; then
  echo "speech files: $(ls /tmp/lj | wc -l)"; mkdir -p $R
  setsid nohup bash /tmp/p.sh > /tmp/p.txt 2>&1 < /dev/null &
fi
while [ $(( $(date +%s) - T0 )) -lt $LIMIT ] && ! grep -q DONE $R/stage 2>/dev/null; do
  sleep 30; echo "--- $(( $(date +%s) - T0 )) s: $(tail -1 $R/stage)"
  tail -c 300 $R/teacher/log.jsonl 2>/dev/null | tail -1 | cut -c1-200
  for n in rosecd det-aux rand-noaux det-noaux; do tail -c 300 $R/student-$n/log.jsonl 2>/dev/null | tail -1 | cut -c1-160; done
  grep -il "error\|traceback" $R/*.txt /tmp/p.txt 2>/dev/null | head -3
  nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader | tr '\n' ' '; echo
done
cat $R/stage; cat $R/rates.txt 2>/dev/null; tail -3 $R/score-*.txt 2>/dev/null
cp $X/*.pt $OUT/ 2>/dev/null; [ -d /tmp/scores ] && tar -czf $OUT/scores.tgz -C /tmp/scores .
tar -czf $OUT/logs.tgz -C $R --exclude='*.pt' . ; ls -la $OUT
