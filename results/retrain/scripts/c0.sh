# Call 0: wheels and pesq to /tmp/site, the code and half the speech to /tmp.
set -e
export PYTHONPATH=/tmp/site
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
python3 -m pip install -q --no-index --no-deps --no-build-isolation --target /tmp/site .sdist/pesq-0.0.4.tar.gz
mkdir -p /tmp/lj && cp demo/speech_train/*.flac .data/ljA/*.flac /tmp/lj/
rm -rf /tmp/repo && mkdir -p /tmp/repo && cp -r *.py checkpoints demo /tmp/repo/
cp .carry/p.sh .carry/score.sh .carry/rates.py /tmp/
python3 -c "import pesq, pystoi, soundfile, torch; print(torch.__version__, torch.cuda.device_count(), torch.cuda.get_device_name())"
nvidia-smi --query-gpu=name,memory.used,memory.total --format=csv
ls /tmp/lj | wc -l; nproc
