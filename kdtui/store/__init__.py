"""The results store: sessions and locks, migrations, one repository per table, read models, user SQL.

Nothing outside this package imports duckdb: the TUI and CLI go through ``Store``.
"""

from kdtui.store.access import StoreAccess
from kdtui.store.session import NotAStore, StoreBusy
from kdtui.store.store import QueryResult, Store
from kdtui.store.user_sql import ReadOnlyViolation, UserQuery, check_read_only

__all__ = ["NotAStore", "QueryResult", "ReadOnlyViolation", "Store", "StoreAccess", "StoreBusy", "UserQuery",
           "check_read_only"]
