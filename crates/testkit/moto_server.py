"""moto_server, with two changes to how moto runs a DynamoDB transaction.

Speed: moto backs up every table a TransactWriteItems touches with copy.deepcopy, once per
action: quadratic in the table's size (a 99-row audit write to a table of 20,000 rows
deep-copies it 100 times). The janitor writes every audit row in a transaction (its hash
chain), so the emulator runs of large scopes would take hours. Here the backup of a table
copies its item maps instead, and the items the transaction touches are kept as they were,
so an Update (which moto applies to the item in place) is undone too.

Atomicity: moto rolls a failed transaction back by putting the whole backed-up table in the
table's place, while its server's threads let other requests write meanwhile: a write made
by another process during the transaction was lost, or half of one (its chain head written
to the replaced table, its rows to the restored one), which real DynamoDB never does. Here
every write (transaction, Put, Update, Delete) holds one lock, so nothing interleaves with a
transaction or its rollback, and every read holds it too, so none sees half a transaction.
"""

import copy
import sys
import threading
from collections import defaultdict

import moto.dynamodb.models as dynamodb_models
from moto.dynamodb.models import DynamoDBBackend
from moto.dynamodb.models.table import Table


class _TableBackupCopy:
    """The `copy` module as moto's DynamoDB backend sees it."""

    def __getattr__(self, name):
        return getattr(copy, name)

    @staticmethod
    def deepcopy(value, memo=None):
        if isinstance(value, Table):
            backup = copy.copy(value)
            backup.items = defaultdict(
                dict,
                {h: dict(v) if isinstance(v, dict) else v for h, v in value.items.items()},
            )
            return backup
        return copy.deepcopy(value, memo)


dynamodb_models.copy = _TableBackupCopy()

_WRITES = threading.RLock()


def _one_writer_at_a_time(method):
    def wrapper(self, *args, **kwargs):
        with _WRITES:
            return method(self, *args, **kwargs)

    return wrapper


# Reads too: a read never sees half a transaction, nor a table's items mid-change.
for _name in ("put_item", "update_item", "delete_item", "get_item", "query", "scan"):
    setattr(DynamoDBBackend, _name, _one_writer_at_a_time(getattr(DynamoDBBackend, _name)))

_transact_write_items = DynamoDBBackend.transact_write_items


def _item_key(backend, op):
    if "Key" in op:
        return op["Key"]
    if "Item" not in op:
        return None
    table = backend.get_table(op["TableName"])
    key = {table.hash_key_attr: op["Item"][table.hash_key_attr]}
    if table.range_key_attr is not None:
        key[table.range_key_attr] = op["Item"][table.range_key_attr]
    return key


def transact_write_items(self, transact_items):
    with _WRITES:
        before = []
        for entry in transact_items:
            _, op = next(iter(entry.items()))
            name = op.get("TableName")
            if not name or name not in self.tables:
                continue
            try:
                key = _item_key(self, op)
                current = self.get_item(name, key) if key is not None else None
            except Exception:  # moto reports a malformed action itself
                continue
            if key is not None:
                attrs = copy.deepcopy(current.to_json()["Attributes"]) if current is not None else None
                before.append((name, key, attrs))
        try:
            return _transact_write_items(self, transact_items)
        except Exception:
            # moto put each table's backup back; what an in-place Update changed is undone here.
            for name, key, attrs in before:
                try:
                    if name not in self.tables:
                        continue
                    if attrs is None:
                        if self.get_item(name, key) is not None:
                            self.delete_item(name, key)
                    else:
                        self.put_item(name, attrs)
                except Exception as undo_failed:  # the transaction's own error says more
                    print(f"moto_server: undo of {name} {key} failed: {undo_failed}", file=sys.stderr)
            raise


DynamoDBBackend.transact_write_items = transact_write_items

if __name__ == "__main__":
    from moto.server import main

    sys.exit(main())
