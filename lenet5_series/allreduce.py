"""All-reduce on several processes: the one operation that DDP adds to training (notebook 05).

    torchrun --standalone --nproc-per-node 2 -m lenet5_series.allreduce

torchrun starts this file once per process and tells each one its rank and the world size (in
environment variables that init_process_group reads). Each process makes its own "gradient";
all_reduce adds them up, in place, on every process at once; dividing by the world size gives
their average, the same everywhere. (Rank 0 gathers what every process holds and prints it all,
so the lines come out in order.)
"""

import torch
import torch.distributed as dist


def main() -> None:
    dist.init_process_group("gloo")  # join the others (gloo: the CPU backend)
    rank, world_size = dist.get_rank(), dist.get_world_size()
    grad = torch.tensor([1.0, 2.0, 3.0]) * (rank + 1)  # this process's own "gradient"
    mine = grad.tolist()
    dist.all_reduce(grad, op=dist.ReduceOp.SUM)  # every process now holds the sum over all
    grad /= world_size  # the average: what DistributedDataParallel does to every gradient
    everyone = [None] * world_size
    dist.all_gather_object(everyone, (mine, grad.tolist()))  # collect them, for one tidy printout
    if rank == 0:
        for r, (before, after) in enumerate(everyone):
            print(f"rank {r} of {world_size}: mine {before} -> average {after}")
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
