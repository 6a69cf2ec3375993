"""The gate's view of active blocks, kept in-process and refreshed when blocks change.

Creating or lifting a block bumps a Redis epoch after commit; each process looks at it at
most every `check_interval` seconds and reloads the (small) list of active blocks when it
moved, and at least every `max_age` seconds so expiries are never missed.
"""

import ipaddress
import time
from dataclasses import dataclass

from django.db.models import Q
from django.utils import timezone

from keys.models import Block
from keys.services import BLOCKS_EPOCH_KEY


@dataclass(frozen=True)
class ActiveBlocks:
    by_key: dict[str, Block]
    networks: tuple[tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, Block], ...]


class BlockList:
    def __init__(self, client, *, check_interval: float = 0.5, max_age: float = 30.0):
        self._redis = client
        self._check_interval = check_interval
        self._max_age = max_age
        self._epoch: int | None = None
        self._checked_at = -1e9
        self._loaded_at = -1e9
        self._blocks = ActiveBlocks({}, ())

    def find(self, key_id: str, ip: str | None, now=None) -> Block | None:
        """The block that applies to this key or address at `now`, if any."""
        self._refresh()
        now = now or timezone.now()
        block = self._blocks.by_key.get(key_id)
        if block is not None and block.is_active_at(now):
            return block
        if ip and self._blocks.networks:
            try:
                address = ipaddress.ip_address(ip)
            except ValueError:
                return None
            for network, block in self._blocks.networks:
                if address in network and block.is_active_at(now):
                    return block
        return None

    def _refresh(self) -> None:
        moment = time.monotonic()
        if moment - self._checked_at < self._check_interval:
            return
        self._checked_at = moment
        epoch = int(self._redis.get(BLOCKS_EPOCH_KEY) or 0)
        if epoch == self._epoch and moment - self._loaded_at < self._max_age:
            return
        self._epoch, self._loaded_at = epoch, moment
        now = timezone.now()
        active = Block.objects.filter(lifted_at__isnull=True).filter(
            Q(expires_at__isnull=True) | Q(expires_at__gt=now)
        )
        by_key, networks = {}, []
        for block in active:
            if block.api_key_id:
                by_key[str(block.api_key_id)] = block
            else:
                networks.append((ipaddress.ip_network(block.ip_network), block))
        self._blocks = ActiveBlocks(by_key, tuple(networks))
