"""Exceptions shared by the layers. Each message is what operators see."""


# Exit statuses every command shares (sysexits' EX_TEMPFAIL for an outage).
EXIT_FAILED, EXIT_USAGE, EXIT_TEMPFAIL = 1, 2, 75


class ReconcilerError(Exception):
    """A failure of a deployment run; the message is recorded in ZooKeeper."""


class TreeContentError(ReconcilerError):
    """The tree asks for something impossible or unsafe for this host."""


class CommandFailed(ReconcilerError):
    """A command exited non-zero."""

    def __init__(self, argv: list[str]) -> None:
        super().__init__(f"Command failed: {' '.join(argv)}")
        self.argv = argv


class InstallFailed(ReconcilerError):
    """The package manager did not leave the wanted version installed."""


class ConfigError(Exception):
    """Bad configuration or usage: exit status 2, one line on stderr."""
