"""The seed's transcript (shared/seed/after.txt), versions 2-5: the agent's
messages, as `LEVEL message`, that every way of running it must reproduce
(tree files, the daemon on ZooKeeper, real dnf)."""

RULE = "INFO " + "=" * 60

TRANSCRIPT = {
    2: [
        RULE,
        "INFO Deploying version 2",
        "INFO /opt/z4mmonitor/bin/zookeeper-deploy -u /cust/someapp/monitor 0",
        "INFO yum -q list installed z4m",
        "INFO /opt/z4m/bin/zookeeper-deploy /cust/someapp/cms 0",
        "INFO /opt/z4m/bin/zookeeper-deploy /cust2/someapp/cms 0",
        "INFO yum -y remove z4mmonitor",
        "INFO Done deploying version 2",
        "INFO Running after hook",
        "INFO echo after",
    ],
    3: [
        RULE,
        "INFO Deploying version 3",
        "INFO yum -q list installed z4m",
        "INFO yum -y clean all",
        "INFO yum -y install z4m-666",
        "INFO yum -q list installed z4m",
        "INFO yum -y downgrade z4m-666",
        "INFO yum -q list installed z4m",
        "ERROR deploying",
        "CRITICAL FAILED deploying version 3",
    ],
    4: [
        RULE,
        "INFO Deploying version 4",
        "INFO yum -q list installed z4m",
        "INFO yum -y clean all",
        "INFO yum -y install z4m-1.0.1",
        "INFO yum -q list installed z4m",
        "INFO /opt/z4m/bin/zookeeper-deploy /cust/someapp/cms 0",
        "INFO /opt/z4m/bin/zookeeper-deploy /cust2/someapp/cms 0",
        "INFO yum -y remove z4m-666",
        "INFO Done deploying version 4",
        "INFO Running after hook",
        "INFO echo after",
    ],
    5: [
        RULE,
        "INFO Deploying version 5",
        "INFO yum -q list installed z4m",
        "INFO /opt/z4m/bin/zookeeper-deploy /cust/someapp/cms 0",
        "INFO /opt/z4m/bin/zookeeper-deploy /cust2/someapp/cms 0",
        "INFO Done deploying version 5",
        "INFO Running after hook",
        "INFO echo 666",
        "ERROR FAILURE",
        "ERROR after",
        "CRITICAL FAILED after deploying version 5",
        "WARNING Not deploying because cluster version is None",
    ],
}
