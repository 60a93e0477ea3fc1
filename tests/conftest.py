pytest_plugins = ["tests.zkfixtures"]
