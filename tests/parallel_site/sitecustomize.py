"""Test-only, on the path of the processes tests/test_parallel.py starts: a CPU machine passes for one with two
GPUs (sora's own count), and diffusers' context parallelism, which places rank r on device r % device_count,
sees one CPU "device" instead of none. The workers then split over gloo on the CPU."""

import os

if os.environ.get("SORA_TEST_GPUS"):
    import torch

    torch.accelerator.device_count = lambda: 1

    import sora_cli.parallel

    sora_cli.parallel.cuda_devices = lambda: int(os.environ["SORA_TEST_GPUS"])
