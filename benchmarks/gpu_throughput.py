"""GPU training images/s of ResNet-20 and ResNet-56: fp32 vs bf16 autocast, NCHW vs channels_last.

    python benchmarks/gpu_throughput.py [--seconds 10]

A prepared script for a machine with a CUDA device (needs only torch and the zoo); it prints one
table with the card's name so the figures can go into the README as measured.
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

import zoo


def measure(model_name: str, bf16: bool, channels_last: bool, batch: int, seconds: float) -> float:
    device = torch.device("cuda")
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    model = zoo.create_model(model_name).to(device=device, memory_format=memory_format).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    x = torch.randn(batch, 3, 32, 32, device=device).contiguous(memory_format=memory_format)
    y = torch.randint(0, 10, (batch,), device=device)

    def step() -> None:
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=bf16):
            loss = F.cross_entropy(model(x).float(), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    for _ in range(10):
        step()
    torch.cuda.synchronize()
    start, steps = time.perf_counter(), 0
    while time.perf_counter() - start < seconds:
        for _ in range(10):
            step()
        torch.cuda.synchronize()
        steps += 10
    return steps * batch / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--batch", type=int, default=512)
    args = parser.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("error: no CUDA device; this benchmark measures GPU throughput")
    torch.backends.cudnn.benchmark = True
    print(f"{torch.cuda.get_device_name()} | torch {torch.__version__} | batch {args.batch}")
    print(f"{'model':<10}{'precision':<10}{'layout':<15}{'images/s':>10}")
    for model_name in ("resnet20", "resnet56"):
        for bf16 in (False, True):
            for channels_last in (False, True):
                rate = measure(model_name, bf16, channels_last, args.batch, args.seconds)
                print(f"{model_name:<10}{'bf16' if bf16 else 'fp32':<10}{'channels_last' if channels_last else 'NCHW':<15}{rate:>10.0f}")


if __name__ == "__main__":
    main()
