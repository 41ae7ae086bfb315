"""Buffered random ids: version 4 UUIDs, never repeated, not shared with a forked child."""

from __future__ import annotations

import os
import uuid

from satworks import ids


def test_ids_are_version_4_uuids_and_never_repeat_across_buffer_refills() -> None:
    made = [ids.uuid4() for _ in range(2000)]  # several 4 KiB buffers

    assert all(isinstance(u, uuid.UUID) and u.version == 4 and u.variant == uuid.RFC_4122 for u in made)
    assert len(set(made)) == len(made)
    assert len(ids.token_hex16()) == 32
    texts = [ids.uuid4_str() for _ in range(2000)]
    assert all(str(uuid.UUID(t)) == t and uuid.UUID(t).version == 4 for t in texts)
    assert uuid.UUID(texts[0]).variant == uuid.RFC_4122 and len(set(texts)) == len(texts)


def test_a_forked_child_does_not_hand_out_the_ids_its_parent_will() -> None:
    ids.uuid4()  # the parent's buffer holds unused bytes now
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its next id, to the parent
        os.write(write, ids.uuid4().bytes)
        os._exit(0)
    os.close(write)
    child_id = uuid.UUID(bytes=os.read(read, 16))
    os.close(read)
    os.waitpid(pid, 0)

    assert child_id not in {ids.uuid4() for _ in range(300)}  # the rest of the parent's buffer
