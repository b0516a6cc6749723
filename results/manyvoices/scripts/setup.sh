# Call 0 of a lease: wheels and pesq into /tmp/site, a copy of the code that later calls cannot disturb.
set -e
export PYTHONPATH=/tmp/site
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
python3 -m pip install -q --no-index --no-deps --no-build-isolation --target /tmp/site .sdist/pesq-0.0.4.tar.gz
rm -rf /tmp/repo && mkdir -p /tmp/repo && cp -r *.py demo /tmp/repo/
python3 -c "import pesq, pystoi, soundfile, torch; print(torch.__version__, torch.cuda.device_count(), torch.cuda.get_device_name())"
nvidia-smi --query-gpu=name,memory.used,memory.total --format=csv,noheader; nproc; free -g | head -2
