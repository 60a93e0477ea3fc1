"""ZooKeeper access: node storage format, fast tree reads, import/export.

The test and demo server lives in `reconciler.zk.server` (not imported
here: the agent has no use for it).
"""

from reconciler.zk.connect import ZooKeeperUnavailable, connect
from reconciler.zk.importer import export_tree, import_tree
from reconciler.zk.reader import read_properties, read_tree, write_properties
from reconciler.zk.storage import decode, encode

__all__ = [
    "ZooKeeperUnavailable",
    "connect",
    "decode",
    "encode",
    "export_tree",
    "import_tree",
    "read_properties",
    "read_tree",
    "write_properties",
]
