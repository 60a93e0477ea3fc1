pytest_plugins = ["tests.zkfixtures", "tests.zksecure"]
