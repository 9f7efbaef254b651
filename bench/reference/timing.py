"""What the reference scripts share: f32 matmuls without TF32 (as hyla's f32 kernels) and the
median time of a CUDA call, measured as hyla's benches measure it."""
import torch

torch.backends.cuda.matmul.allow_tf32 = False
torch.backends.cudnn.allow_tf32 = False


def median_ms(fn, warmups=3, reps=20):
    """The median of `reps` timed calls of fn after `warmups` untimed ones, in ms (CUDA events)."""
    for _ in range(warmups):
        fn()
    times = []
    for _ in range(reps):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end))
    return sorted(times)[len(times) // 2]
