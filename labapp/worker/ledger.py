"""The idempotency ledger: a small SQLite file that records each business id applied once."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS effects (
    business_id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    message_id TEXT,
    applied_at REAL NOT NULL,
    applications INTEGER NOT NULL DEFAULT 1
);
CREATE TABLE IF NOT EXISTS deliveries (
    business_id TEXT NOT NULL,
    message_id TEXT,
    receive_count INTEGER,
    at REAL NOT NULL
);
"""


class Ledger:
    """Record deliveries and apply each business id's effect at most once."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, timeout=30, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(SCHEMA)

    def apply(
        self, business_id: str, kind: str, message_id: str | None = None, receive_count: int = 1
    ) -> bool:
        """Record a delivery; return True if this call applied the effect, False for a duplicate."""
        now = time.time()
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.execute(
                    "INSERT INTO deliveries (business_id, message_id, receive_count, at) VALUES (?, ?, ?, ?)",
                    (business_id, message_id, receive_count, now),
                )
                cursor = self._db.execute(
                    "INSERT OR IGNORE INTO effects (business_id, kind, message_id, applied_at) VALUES (?, ?, ?, ?)",
                    (business_id, kind, message_id, now),
                )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return cursor.rowcount == 1

    def applied(self, business_id: str) -> bool:
        """Return True when the effect for business_id has been applied."""
        with self._lock:
            row = self._db.execute("SELECT 1 FROM effects WHERE business_id = ?", (business_id,)).fetchone()
        return row is not None

    def applications(self) -> dict[str, int]:
        """Return business id -> times its effect was applied (1 everywhere if idempotency holds)."""
        with self._lock:
            rows = self._db.execute("SELECT business_id, applications FROM effects").fetchall()
        return {row[0]: row[1] for row in rows}

    def deliveries(self) -> dict[str, int]:
        """Return business id -> how many POSTs carried it (more than 1 means duplicates arrived)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT business_id, COUNT(*) FROM deliveries GROUP BY business_id"
            ).fetchall()
        return {row[0]: row[1] for row in rows}

    def summary(self) -> dict[str, int]:
        """Return counts of effects applied and deliveries seen."""
        with self._lock:
            effects = self._db.execute("SELECT COUNT(*) FROM effects").fetchone()[0]
            deliveries = self._db.execute("SELECT COUNT(*) FROM deliveries").fetchone()[0]
        return {"applied": effects, "deliveries": deliveries, "duplicates": deliveries - effects}

    def clear(self) -> None:
        """Forget everything (used by `labapp reset`)."""
        with self._lock:
            self._db.execute("DELETE FROM effects")
            self._db.execute("DELETE FROM deliveries")

    def close(self) -> None:
        """Close the database file."""
        with self._lock:
            self._db.close()
