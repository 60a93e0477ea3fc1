"""Which deployments belong to a host: every rule and message of agent.md."""

from __future__ import annotations

import pytest

from reconciler.errors import TreeContentError
from reconciler.model import (
    Controller,
    Deployment,
    HostIdentity,
    app_name,
    desired_state,
    path_name,
)
from reconciler.treefmt import parse

HOST = HostIdentity(id="424242424242", name="host42")
ROLE_HOST = HostIdentity(id="424242424242", name="host42", role="my.role")


def deployments(text: str, host: HostIdentity = HOST) -> list[tuple[str, str, int]]:
    return [(d.rpm, d.path, d.n) for d in desired_state(parse(text), host).deployments]


def error(text: str, host: HostIdentity = HOST) -> str:
    with pytest.raises(TreeContentError) as info:
        desired_state(parse(text), host)
    return str(info.value)


def test_targets_by_id_or_name_with_instances_in_path_order() -> None:
    text = """
/b : pkg
  version = '1'
  /deploy
    /host42
      n = 2
    /otherhost
/a : pkg sub
  version = '1'
  /deploy
    /424242424242
"""
    state = desired_state(parse(text), HOST)
    assert state.deployments == (
        Deployment(app="pkg", rpm="pkg", subtype="sub", version="1", path="/a", n=0),
        Deployment(app="pkg", rpm="pkg", subtype=None, version="1", path="/b", n=0),
        Deployment(app="pkg", rpm="pkg", subtype=None, version="1", path="/b", n=1),
    )
    assert state.packages == {"pkg": "1"}


def test_role_host_takes_only_role_targets() -> None:
    text = """
/a : pkg
  version = '1'
  /deploy
    /my.role
    /otherhost
"""
    assert deployments(text, ROLE_HOST) == [("pkg", "/a", 0)]
    assert deployments(text, HOST) == []


def test_host_based_deployment_on_role_host() -> None:
    text = "/a : pkg\n  version = '1'\n  /deploy\n    /host42\n"
    assert error(text, ROLE_HOST) == (
        "Found a host-based deployment at /a/deploy/host42 but the host has a role, my.role."
    )


def test_conflicting_deployments() -> None:
    text = "/a : pkg\n  version = '1'\n  /deploy\n    /host42\n    /424242424242\n"
    assert error(text) == "Conflicting deployments for /a. Can't deploy to host42 and 424242424242."


def test_invalid_node_type() -> None:
    text = "/a : one two three\n  version = '1'\n  /deploy\n    /host42\n"
    assert error(text) == "Invalid node type: 'one two three'"


def test_missing_version() -> None:
    text = "/a : pkg\n  /deploy\n    /host42\n"
    assert error(text) == "No version found for /a"


def test_versioned_rpm_needs_no_version() -> None:
    text = "/a : z4m-4.0.0\n  /deploy\n    /host42\n"
    state = desired_state(parse(text), HOST)
    assert state.packages == {"z4m-4.0.0": None}
    assert state.deployments[0].app == "z4m"


def test_inconsistent_versions() -> None:
    text = """
/a : pkg
  version = '2.0.0'
  /deploy
    /host42
/b : pkg
  version = '3.0.0'
  /deploy
    /host42
"""
    assert error(text) == "Inconsistent versions for pkg. '3.0.0' != '2.0.0'"


@pytest.mark.parametrize(
    ("type_", "what"),
    [
        ("../etc", "package name"),
        ("-rf", "package name"),
        ("pkg ../x", "subtype"),
        ("pkg\x01", "package name"),
    ],
)
def test_unsafe_names_are_rejected(type_: str, what: str) -> None:
    text = f"/a : {type_}\n  version = '1'\n  /deploy\n    /host42\n"
    assert error(text).startswith(f"Unsafe {what} ")
    assert error(text).endswith(" at /a")


def test_unsafe_path_segment() -> None:
    text = "/..x : pkg\n  version = '1'\n  /deploy\n    /host42\n"
    assert error(text) == "Unsafe path segment '..x' at /..x"


def test_unsafe_version() -> None:
    text = "/a : pkg\n  version = '1 --nogpgcheck'\n  /deploy\n    /host42\n"
    assert error(text) == "Unsafe version '1 --nogpgcheck' at /a"


def test_bad_instance_count() -> None:
    text = "/a : pkg\n  version = '1'\n  /deploy\n    /host42\n      n = 'x'\n"
    assert error(text) == "Invalid n for /a/deploy/host42: 'x'"


def test_version_through_a_property_link() -> None:
    text = """
/versions
  z4m = '1.2.3'
/a : z4m
  version => /versions z4m
  /deploy
    /host42
"""
    assert desired_state(parse(text), HOST).packages == {"z4m": "1.2.3"}


def test_names() -> None:
    assert path_name("/cust/someapp/cms") == "cust,someapp,cms"
    assert app_name("z4m-4.0.0") == "z4m"
    assert app_name("z4m") == "z4m"
    assert app_name("my-rc") == "my-rc"


@pytest.mark.parametrize(
    ("version", "message"),
    [
        ("git:--upload-pack=touch /tmp/x#main", "Unsafe version"),
        ("git:-oProxyCommand=x#main", "Unsafe version"),
        ("git:/repo#-b", "Unsafe version"),
        ("git:/repo", "Invalid git version"),
        ("svn+ssh://host/repo\nx", "Unsafe version"),
    ],
)
def test_vcs_versions_are_checked_with_the_tree(version: str, message: str) -> None:
    text = f"/a : app\n  version = {version!r}\n  /deploy\n    /host42\n"
    assert error(text).startswith(f"{message} {version!r} at /a")


def test_vcs_version_accepted() -> None:
    text = "/a : app\n  version = 'git:///srv/repo.git#v1.2'\n  /deploy\n    /host42\n"
    assert desired_state(parse(text), HOST).packages == {"app": "git:///srv/repo.git#v1.2"}


def test_max_parallel_is_carried_by_each_deployment() -> None:
    text = "/a : pkg\n  version = '1'\n  max-parallel = 5\n  /deploy\n    /host42\n      n = 2\n"
    state = desired_state(parse(text), HOST)
    assert [d.max_parallel for d in state.deployments] == [5, 5]
    plain = "/a : pkg\n  version = '1'\n  /deploy\n    /host42\n"
    assert desired_state(parse(plain), HOST).deployments[0].max_parallel == 1


@pytest.mark.parametrize("value", ["True", "'2'", "2.0", "0", "-1", "None"])
def test_bad_max_parallel(value: str) -> None:
    text = f"/a : pkg\n  version = '1'\n  max-parallel = {value}\n  /deploy\n    /host42\n"
    shown = {"True": "True", "'2'": "'2'", "2.0": "2.0", "None": "None"}.get(value, value)
    assert error(text) == f"Invalid max-parallel for /a: {shown}"


def test_role_max_parallel() -> None:
    text = "/roles\n  /my.role : my-rc\n    version = '1'\n    max-parallel = 3\n"
    assert desired_state(parse(text), ROLE_HOST).controller == Controller("my-rc", "1", 3)
    bad = "/roles\n  /my.role : my-rc\n    version = '1'\n    max-parallel = False\n"
    assert error(bad, ROLE_HOST) == "Invalid max-parallel for /roles/my.role: False"
