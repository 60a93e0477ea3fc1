"""Tree texts used by more than one test module."""

from __future__ import annotations

# What `reconcile sync` tests commit: two applications for host h1.
CLUSTER_V1 = """\
/cust
  /someapp
    /cms : z4m
      version = '1.0.0'
      /deploy
        /h1
    /monitor : z4mmonitor
      version = '1.1.0'
      /deploy
        /h1
/role-locks
  /web
/hosts
  # Ignored by the sync: the version is the revision.
  version = 99
"""

# An application whose deploy script takes long enough to be interrupted.
SLOW = "/slow\n  /app : tooslow\n    version = '1.0.0'\n    /deploy\n      /host42\n"

Z4M = (
    "/cust\n  /someapp\n    /cms : z4m\n      version = '1.0.0'\n      /deploy\n        /my.role\n"
)


def app_tree(version: object, cluster: int, rpm: str = "app") -> str:
    """One application deployed to the sandbox host, at a cluster version."""
    return (
        f"/app : {rpm}\n"
        f"  version = {version!r}\n"
        "  /deploy\n"
        "    /424242424242\n"
        "/hosts\n"
        f"  version = {cluster}\n"
    )


def role_tree(controller: str | None = "my-rc", version: object = "1.0.0", app: str = Z4M) -> str:
    """A role's tree: its controller, its lock node, one application."""
    text = "/role-locks\n  /my.role\n" + app
    if controller:
        text += f"/roles\n  /my.role : {controller}\n    version = {version!r}\n"
    return text
