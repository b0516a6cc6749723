"""The paper's metrics (METHOD.md section 7): PESQ wide-band, ESTOI, SI-SDR.

All functions take 16 kHz float numpy arrays of equal length: the reference first.
"""
import numpy as np

from data import SAMPLE_RATE


def si_sdr(reference, estimate):
    """Scale-invariant SDR in dB: 10 log10 |a s|^2 / |a s - s_hat|^2 with a = <s_hat, s> / |s|^2."""
    reference, estimate = np.asarray(reference, np.float64), np.asarray(estimate, np.float64)
    a = np.dot(estimate, reference) / (np.dot(reference, reference) + 1e-12)
    target = a * reference
    return 10 * np.log10((np.sum(target ** 2) + 1e-12) / (np.sum((target - estimate) ** 2) + 1e-12))


def pesq_wb(reference, estimate):
    """PESQ wide-band (ITU-T P.862.2) at 16 kHz; NaN where PESQ cannot score (silence, too short)."""
    from pesq import pesq
    try:
        return float(pesq(SAMPLE_RATE, reference, estimate, "wb"))
    except Exception:  # the pesq package raises NoUtterancesError / BufferTooShortError
        return float("nan")


def estoi(reference, estimate):
    """Extended STOI (pystoi, extended=True)."""
    from pystoi import stoi
    return float(stoi(reference, estimate, SAMPLE_RATE, extended=True))


def score(reference, estimate):
    """{'pesq', 'estoi', 'si_sdr'} of one estimate."""
    return {"pesq": pesq_wb(reference, estimate), "estoi": estoi(reference, estimate),
            "si_sdr": float(si_sdr(reference, estimate))}
