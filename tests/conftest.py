pytest_plugins = ["tests.zkfixtures", "tests.zksecure", "tests.support_prometheus"]
