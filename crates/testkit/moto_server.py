"""moto_server, with one change to how moto runs a DynamoDB transaction.

moto backs up every table a TransactWriteItems touches with copy.deepcopy, once per action:
quadratic in the table's size (a 99-row audit write to a table of 20,000 rows deep-copies it
100 times). The janitor writes every audit row in a transaction (its hash chain), so the
emulator runs of large scopes would take hours. Here the backup of a table copies its item
maps instead: a Put replaces an item in them, so a rollback still restores the table as it
was. Only an Update applied before a later action fails would stay applied, and the
janitor's transactions put the head Update, whose condition is what fails, first.
"""

import copy
import sys
from collections import defaultdict

import moto.dynamodb.models as dynamodb_models
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

if __name__ == "__main__":
    from moto.server import main

    sys.exit(main())
