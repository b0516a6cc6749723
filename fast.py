"""Fast inference: a Denoiser made fast on its device, with the same output up to float rounding.

optimise is what enhance.py's --compile and --cuda-graph, and the --compile of teacher.py and distill.py,
call: the memory format of the device's fastest convolutions, cuDNN's algorithm search, torch.compile, and
CUDA graphs through GraphedNet; on a CPU also keep_freed_memory, the C library's allocator told to reuse memory
(teacher.py and distill.py call it too for a run on a CPU); cpu_has_bf16, whether a CPU computes bfloat16
itself (enhance.py's --precision auto). None of it changes the method; a reader can skip this file. The
benchmarks that measured these paths are speed.py's (RESULTS.md sections 3, 5 and 7.12).
"""
import ctypes
import re
from pathlib import Path

import torch

from model import GroupNorm


def optimise(D, device, compiled=False, graph_shape=None, compile_mode=None, autotune=True):
    """D, changed in place for fast inference on `device`, with the same output up to float rounding.

    On a CPU: channels-last memory format (NHWC; NCSNpp converts its input to match), the layout of oneDNN's
    fastest convolutions (1.4 x faster for the small preset on a 2-core AVX-512 CPU), and keep_freed_memory for
    the whole process.
    On a GPU: NCHW, 1.5 x faster there than channels-last in eager mode (RESULTS.md 5). autotune: cuDNN times
    its convolution algorithms on the first call of each input shape and keeps the fastest (cudnn.benchmark, a
    setting of the whole process). Worth it where one shape repeats (training crops, speed.py's timed calls);
    enhance.py passes False, its files of every length bringing a new shape almost every call (3 s instead of 9
    to 20 s for 16 files on an H200, RESULTS.md 5).
    compiled: the U-Net compiled by torch.compile (the first call of each input shape compiles, for a minute
    or more); on a GPU its group norms take per-channel moments first (GroupNorm). compile_mode: torch.compile's
    mode ("reduce-overhead": the compiled U-Net replayed from CUDA graphs that torch records itself, for
    training: teacher.py --cuda-graphs).
    graph_shape [B, 4, 256, T], on a GPU only: the U-Net replayed from a CUDA graph for inputs of that shape
    (GraphedNet). The Denoiser's complex preconditioning stays eager."""
    gpu = torch.device(device).type == "cuda"
    if gpu:
        torch.backends.cudnn.benchmark = autotune
    else:
        D.to(memory_format=torch.channels_last)
        keep_freed_memory()
    if compiled:
        if gpu:
            for m in D.net.modules():
                if isinstance(m, GroupNorm):
                    m.per_channel_moments = True
        D.net.compile(mode=compile_mode)
    if graph_shape is not None and gpu:
        D.net = GraphedNet(D.net, graph_shape)
    return D


def keep_freed_memory():
    """Linux with glibc: the process keeps the memory it frees for its next allocations, instead of handing it
    back to the system. By default glibc maps every block above a threshold (128 kB, rising to at most 32 MB)
    on its own and unmaps it when it is freed, and returns free memory at the top of its heap; here no block is
    mapped on its own, and the heap gives back only what exceeds 2 GB. On a CPU every layer's output is a new
    tensor of up to tens of MB; mapped afresh, it costs a page fault for every 4 kB the layer writes: for the
    medium student's 4-s chunk on two cores 68,000 to 133,000 faults and 0.2 to 0.4 s of kernel time a call
    (RESULTS.md 5). The process then holds its peak memory until it ends. Returns whether the C library took
    both settings (elsewhere nothing changes)."""
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):  # not glibc: macOS, Windows, musl
        return False
    M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4  # glibc's malloc.h
    return mallopt(M_MMAP_MAX, 0) == 1 and mallopt(M_TRIM_THRESHOLD, 2 ** 31 - 1) == 1


class GraphedNet(torch.nn.Module):
    """The U-Net F(x, t) replayed from a CUDA graph for inputs x of one shape; other shapes run eagerly.

    A CUDA graph records the kernels of one call with their memory addresses and launches them all at
    once: at batch 1 the launches of the ~1,000 kernels of an eager call, not the arithmetic, set the
    time. The first call of that shape under each autocast state (enhance.precision) captures a graph in it
    (a graph replays the arithmetic it recorded); each call copies its inputs into the recorded
    ones, replays, and returns a copy of the recorded output, which the next replay overwrites."""

    def __init__(self, net, shape):
        super().__init__()
        self.net, self.shape, self.graphs = net, tuple(shape), {}

    def forward(self, x, t):
        if tuple(x.shape) != self.shape:
            return self.net(x, t)  # another shape (a file shorter than a chunk, a last smaller group): eager
        key = (torch.is_autocast_enabled("cuda"), torch.get_autocast_dtype("cuda"))
        if key not in self.graphs:
            x_in, t_in = x.clone(), t.clone()
            graph, out = capture_graph(lambda: self.net(x_in, t_in))
            self.graphs[key] = graph, x_in, t_in, out
        graph, x_in, t_in, out = self.graphs[key]
        x_in.copy_(x)
        t_in.copy_(t)
        graph.replay()
        return out.clone()


def capture_graph(fn):
    """(graph, output) of fn() captured as a CUDA graph, following torch.cuda.graphs: warm-up calls on a
    side stream first, and no autocast weight cache during capture (its cast copies would be freed after
    capture, while the graph still reads them)."""
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        for _ in range(3):
            fn()
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.autocast("cuda", dtype=torch.get_autocast_dtype("cuda"), enabled=torch.is_autocast_enabled("cuda"),
                        cache_enabled=False), torch.cuda.graph(graph):
        out = fn()
    return graph, out


def cpu_has_bf16(cpuinfo="/proc/cpuinfo"):
    """Whether this CPU computes in bfloat16 itself, with the AVX-512 BF16 or AMX-BF16 instructions (flags
    avx512_bf16, amx_bf16 in Linux's cpuinfo). There one-step enhancement in bf16 autocast took 0.6 x the time
    of float32, with the same scores (RESULTS.md 7.12); a CPU without them emulates bfloat16, many times slower
    than float32 (RESULTS.md 7.1). False where cpuinfo cannot be read (another system): float32 then."""
    try:
        text = Path(cpuinfo).read_text(errors="replace")
    except OSError:
        return False
    return re.search(r"\b(avx512_bf16|amx_bf16)\b", text) is not None
