"""Object and request ids: format, uniqueness, and no repeats in a forked child."""

from __future__ import annotations

import os
import re

from routes.functions.shared_func import new_object_id, random_hex_id

HEX_ID = re.compile(r"^[0-9a-f]{32}$")


def test_random_hex_id_format_and_uniqueness():
    ids = [random_hex_id() for _ in range(20000)]

    assert all(HEX_ID.match(value) for value in ids)
    assert len(set(ids)) == len(ids)


def test_new_object_id_has_prefix():
    value = new_object_id("chatcmpl")

    assert value.startswith("chatcmpl-")
    assert HEX_ID.match(value.removeprefix("chatcmpl-"))


def test_forked_child_gets_new_ids():
    random_hex_id()
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read_end)
        os.write(write_end, ",".join(random_hex_id() for _ in range(3)).encode())
        os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end) as reader:
        child_ids = reader.read().split(",")
    os.waitpid(pid, 0)
    parent_ids = [random_hex_id() for _ in range(3)]

    assert len(child_ids) == 3
    assert not set(child_ids) & set(parent_ids)
