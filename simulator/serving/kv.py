"""A paged KV-cache block manager (vLLM's): fixed-size blocks of ``block_size`` tokens.

A sequence of ``n`` tokens holds ``ceil(n / block_size)`` blocks. Blocks are counted, not
placed: fragmentation inside a block is the only waste (the last block of a sequence),
as in a paged cache. ``watermark`` blocks are kept free when admitting new sequences so
that running ones can grow (vLLM keeps 1%).
"""

from __future__ import annotations


class KVError(ValueError):
    user_facing = True


class BlockManager:
    __slots__ = ("block_size", "total", "free", "watermark", "host_total", "host_free")

    def __init__(self, total_blocks: int, block_size: int = 16, watermark: float = 0.01,
                 host_blocks: int = 0) -> None:
        if total_blocks < 1:
            raise KVError(f"the KV cache holds no block of {block_size} tokens; the model leaves no room for it")
        self.block_size = int(block_size)
        self.total = int(total_blocks)
        self.free = int(total_blocks)
        self.watermark = int(watermark * total_blocks)
        self.host_total = int(host_blocks)
        self.host_free = int(host_blocks)

    def blocks_for(self, tokens: int) -> int:
        return -(-int(tokens) // self.block_size)

    @property
    def used(self) -> int:
        return self.total - self.free

    @property
    def utilization(self) -> float:
        return (self.total - self.free) / self.total

    def can_admit(self, blocks: int) -> bool:
        return self.free - blocks >= self.watermark

    def take(self, blocks: int) -> None:
        assert blocks <= self.free, (blocks, self.free)
        self.free -= blocks

    def give(self, blocks: int) -> None:
        self.free += blocks
        assert self.free <= self.total

    def swap_out(self, blocks: int) -> bool:
        """Move ``blocks`` to host memory; False when the host swap space is full."""
        if blocks > self.host_free:
            return False
        self.host_free -= blocks
        self.free += blocks
        return True

    def swap_in(self, blocks: int) -> None:
        self.host_free += blocks
        self.free -= blocks
