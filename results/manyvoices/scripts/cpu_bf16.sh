# The bundled medium student in bf16 on two cores of the device's CPU (AVX-512 bf16, AMX), against float32: RTF
# (section 5's command, float32 and bf16 in one run, pinned to cores 0 and 1, the small and the medium student
# alternately twice) and its output on the sets with a clean reference, enhanced in bf16 on the other cores and
# brought back in one tar to be scored at home beside the float32 scores (RESULTS 7.12).
# SETS: name=noisy-folder pairs (default p287 and libri_test, as staged by stage.sh).
export PYTHONPATH=/tmp/site
cd ${REPO:-/tmp/repo}
lscpu | grep -iE "model name|^cpu\(s\)"
echo "flags: $(grep -o -w -E 'avx2|avx512f|avx512_bf16|amx_bf16|amx_tile' /proc/cpuinfo | sort -u | tr '\n' ' ')"
if [ -z "$SKIP_RTF" ]; then for r in 1 2; do for s in rosecd-small rosecd-medium-13700; do
  taskset -c 0,1 python3 speed.py --preset small --checkpoint-student /tmp/state/$s.pt --device cpu --steps 1 \
    --repeats 5 --seconds 4 --precision fp32 bf16 --threads 2 2>&1 | grep -E "^\| 1 \|" | sed "s|^|$r $s: |"
done; done; fi
SETS=${SETS:-"p287=demo/vbdmd/noisy libri=/tmp/data/valid/libri_test/noisy"}
for pair in $SETS; do name=${pair%%=*}; dir=${pair#*=}
  T0=$(date +%s)
  taskset -c 2-15 python3 enhance.py $dir -o /tmp/bf16/$name --checkpoint /tmp/state/rosecd-medium-13700.pt \
    --device cpu --precision bf16 --overwrite 2>&1 | tail -2
  echo "$name: $(ls /tmp/bf16/$name | wc -l) files in $(( $(date +%s) - T0 )) s"
done
tar -cf $OUT/bf16-${TAG:-a}.tar -C /tmp/bf16 .; ls -la $OUT
