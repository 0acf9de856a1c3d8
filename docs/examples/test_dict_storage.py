"""Prove a storage backend with the contract suite: ``pytest test_dict_storage.py``."""

from __future__ import annotations

from custom_storage import DictStorage

from zentitle_stripe.storage import Storage
from zentitle_stripe.testing import EmulatedWorld, StorageContract


class TestDictStorage(StorageContract):
    """Runs every contract test (claims, leases, locks, concurrency) on a fresh backend."""

    def make_storage(self) -> Storage:
        return DictStorage()


def test_provisioning_end_to_end_on_dict_storage() -> None:
    world = EmulatedWorld(storage=DictStorage())
    world.offering("PRO-1Y")
    subscription_id, paid = world.subscribe(world.customer(), [(world.price("PRO-1Y"), 1)])
    assert world.deliver(paid).outcome.kind.value == "provisioned"
    assert world.deliver(paid).outcome.kind.value == "duplicate"
    assert len(world.groups(subscription_id)) == 1
    world.close()
