"""Notebook 05, idempotency: a payment gateway that charges whatever it is asked, and a store of done keys."""

from __future__ import annotations

import threading


# -- 05: an outside effect that must happen once ------------------------------------------------------
class PaymentGateway:
    """A stand-in for a card processor: it charges whatever it is asked to, duplicates included."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.charges: list[tuple[str, float]] = []

    def charge(self, order_id: str, amount: float) -> None:
        """Charge an order (every call is a real charge)."""
        with self._lock:
            self.charges.append((order_id, amount))

    def total(self, order_id: str | None = None) -> float:
        """Return the money charged, for one order or for all."""
        with self._lock:
            return sum(amount for oid, amount in self.charges if order_id in (None, oid))

    def count(self, order_id: str) -> int:
        """Return how many times an order was charged."""
        with self._lock:
            return sum(1 for oid, _ in self.charges if oid == order_id)


class DoneStore:
    """Remember business ids, like a table with a conditional put: add_if_new is atomic."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._keys: set[str] = set()

    def add_if_new(self, key: str) -> bool:
        """Record key; return True only for the first caller (the one that should do the work)."""
        with self._lock:
            if key in self._keys:
                return False
            self._keys.add(key)
            return True

    def __contains__(self, key: object) -> bool:
        with self._lock:
            return key in self._keys

    def __len__(self) -> int:
        with self._lock:
            return len(self._keys)
