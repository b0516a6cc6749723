# The rate runs (issues 12 and 14), on GPU 1 except the two DDP runs (both GPUs; GPU 0 is compiling the teacher
# then: its compile is CPU work). Each run: --max-minutes of training, no validation, log every 10 updates.
export PYTHONPATH=/tmp/site PYTHONUNBUFFERED=1 NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1
R=/tmp/runs
run() {  # name dir timeout command...
  local name=$1 dir=$2 to=$3; shift 3
  local t=$(date +%s)
  (cd $dir && timeout -s KILL $to "$@" --out $R/b-$name > $R/b-$name.txt 2>&1); echo "$name rc $? $(( $(date +%s) - t )) s"
}
TCH="--preset small --speech /tmp/lj --steps 1000000 --lr 5e-4 --batch-size 64 --grad-accum 1 --bf16 --save-every 1000000 --log-every 10"
DST="--speech /tmp/lj --steps 1000000 --grad-accum 1 --bf16 --save-every 1000000 --log-every 10"
TR="torchrun --standalone --nproc_per_node=2"
G1="env CUDA_VISIBLE_DEVICES=1"
run ddp-teacher-small /tmp/repo 150 $TR teacher.py $TCH --valid-files 0 --max-minutes 0.75
run ddp-distill-ref /tmp/repo 170 $TR distill.py --teacher /tmp/ref-new.pt $DST --batch-size 14 --valid-files 0 --max-minutes 0.75
run new-teacher-small /tmp/repo 120 $G1 python3 teacher.py $TCH --valid-files 0 --max-minutes 0.75
run new-distill-ref /tmp/repo 130 $G1 python3 distill.py --teacher /tmp/ref-new.pt $DST --batch-size 14 --valid-files 0 --max-minutes 0.75
run old-teacher-small /tmp/old 120 $G1 python3 teacher.py $TCH --valid-files 0 --num-workers 14 --max-minutes 0.75
run old-distill-ref /tmp/old 130 $G1 python3 distill.py --teacher /tmp/ref-old.pt $DST --batch-size 14 --valid-files 0 --num-workers 3 --max-minutes 0.75
run old-distill-small /tmp/old 120 $G1 python3 distill.py --teacher /tmp/small-old.pt $DST --batch-size 16 --valid-files 0 --num-workers 3 --max-minutes 0.75
run new-distill-small /tmp/repo 120 $G1 python3 distill.py --teacher /tmp/small-new.pt $DST --batch-size 16 --valid-files 0 --max-minutes 0.75
run new-distill-ref-compiled /tmp/repo 420 $G1 env TORCH_LOGS=recompiles python3 distill.py --teacher /tmp/ref-new.pt $DST --batch-size 14 --valid-files 0 --compile --max-minutes 6
run new-distill-small-compiled /tmp/repo 330 $G1 env TORCH_LOGS=recompiles python3 distill.py --teacher /tmp/small-new.pt $DST --batch-size 16 --valid-files 0 --compile --max-minutes 5
echo BENCH DONE
