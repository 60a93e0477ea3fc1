pytest_plugins = ["tests.zkfixtures", "tests.support_prometheus"]
