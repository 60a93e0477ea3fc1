"""A host taking a service lock in its own process, for fault trials.

python -m tests.support.lock_holder hold CONNECTION NAME OWNER TIMEOUT SECONDS LOG
    takes ServiceLock NAME (session timeout TIMEOUT s) and "deploys":
    runs `deploy` below as a child process, as the agent runs a deploy
    script, and waits for it. Prints `acquired`, then `halt` and
    `lost <message>`, or `released`, one line each.
python -m tests.support.lock_holder deploy LOG SECONDS
    the deploy script: appends `start <time>` and, SECONDS later,
    `end <time>` to LOG.
"""

from __future__ import annotations

import subprocess
import sys
import time

from reconciler.zk.connect import connect
from reconciler.zk.servicelock import LockLost, ServiceLock


def say(line: str) -> None:
    print(line, flush=True)


def deploy(log: str, seconds: float) -> None:
    with open(log, "a") as out:
        out.write(f"start {time.time()}\n")
    time.sleep(seconds)
    with open(log, "a") as out:
        out.write(f"end {time.time()}\n")


def hold(connection: str, name: str, owner: str, timeout: float, seconds: str, log: str) -> None:
    client = connect(connection, timeout=timeout)
    try:
        with ServiceLock(client, name, owner, owner, halt=lambda: say("halt")):
            say("acquired")
            script = [sys.executable, "-m", "tests.support.lock_holder", "deploy", log, seconds]
            subprocess.run(script, check=True)
        say("released")
    except LockLost as lost:
        say(f"lost {lost}")
    finally:
        client.stop()
        client.close()


def main() -> None:
    if sys.argv[1] == "deploy":
        deploy(sys.argv[2], float(sys.argv[3]))
    else:
        connection, name, owner, timeout, seconds, log = sys.argv[2:8]
        hold(connection, name, owner, float(timeout), seconds, log)


if __name__ == "__main__":
    main()
