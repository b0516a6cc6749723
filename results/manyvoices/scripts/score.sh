# score.sh NAME CHECKPOINT: the checkpoint's enhancement of the test sets in SETS, scored. By default the three of
# RESULTS 7: held-out LibriSpeech speakers (libri), the VoiceBank-DEMAND p287 pairs (p287), out of domain (ood:
# demo/ood_noisy, carried by name under the lease trick); libri_low and ood_high (7.5, from .xfer9) on request. The
# enhanced audio goes to $ENH/NAME/SET (default $R/enhanced: set it outside $R on the device, whose logs.tgz takes all
# of $R), the scores (scores.csv ...) to $R/scores/NAME/SET, which watch.sh's logs.tgz brings home; the paired
# comparisons (evaluate.py --compare) run at home on them. ENHANCE_EXTRA: more enhance.py options.
export PYTHONPATH=/tmp/site PYTHONUNBUFFERED=1
REPO=${REPO:-/tmp/repo} D=${D:-/tmp/data} R=${R:-/tmp/runs} DEV=${DEV:-cuda}; ENH=${ENH:-$R/enhanced}; cd $REPO
n=$1 ck=$2
for s in libri:$D/valid/libri_test/noisy:$D/valid/libri_test/clean p287:$REPO/demo/vbdmd/noisy:$REPO/demo/vbdmd/clean \
         ood:$REPO/demo/ood_noisy:$REPO/demo/speech_test libri_low:$D/valid/libri_low/noisy:$D/valid/libri_low/clean \
         ood_high:$D/valid/ood_high/noisy:$D/valid/ood_high/clean; do
  IFS=: read set noisy clean <<< "$s"
  case " ${SETS:-libri p287 ood} " in *" $set "*) ;; *) continue ;; esac
  python3 enhance.py $noisy -o $ENH/$n/$set --checkpoint $ck --device $DEV --overwrite ${ENHANCE_EXTRA} &&
    python3 evaluate.py --clean $clean --noisy $noisy --enhanced $ENH/$n/$set --out $R/scores/$n/$set --overwrite
done
