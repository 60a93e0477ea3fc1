"""Actual state: what the file system says is installed. Pure data; the
filesystem driver reads it."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class InstalledDeployment(BaseModel):
    model_config = ConfigDict(frozen=True)

    app: str
    rpm: str
    path: str
    n: int

    @property
    def key(self) -> tuple[str, str, int]:
        return (self.app, self.path, self.n)


class ActualState(BaseModel):
    model_config = ConfigDict(frozen=True)

    # Names of the directories in /opt.
    opt: frozenset[str] = frozenset()
    # Directories in /opt holding bin/zookeeper-deploy.
    applications: frozenset[str] = frozenset()
    # Directories in /opt that are VCS checkouts (.git or .svn inside).
    checkouts: frozenset[str] = frozenset()
    # Directories in /opt holding bin/starting-deployments.
    controllers: frozenset[str] = frozenset()
    deployments: tuple[InstalledDeployment, ...] = ()
