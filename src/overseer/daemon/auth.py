"""Who is on the other end of the socket (SO_PEERCRED), and what they may do.

Anyone who can open the socket may read (status, history, events): the socket's file mode and
group decide who that is. Deciding (approve, reject, roll back, pause, resume, run now) is for
approvers: users or uids listed in `approvers.users`, members of `approvers.groups`, and
(unless `approvers.include_owner` is false) the user the daemon runs as and root.
"""

from __future__ import annotations

import grp
import os
import pwd
import socket
import struct
from dataclasses import dataclass

from overseer.config import Approvers


@dataclass(frozen=True)
class Peer:
    pid: int
    uid: int
    gid: int

    @property
    def user(self) -> str:
        try:
            return pwd.getpwuid(self.uid).pw_name
        except KeyError:
            return f"uid{self.uid}"

    def groups(self) -> set[int]:
        try:
            return set(os.getgrouplist(self.user, self.gid))
        except (KeyError, OSError):
            return {self.gid}


def peer_of(sock: socket.socket) -> Peer:
    raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    pid, uid, gid = struct.unpack("3i", raw)
    return Peer(pid, uid, gid)


def _gid(group: str | int) -> int | None:
    if isinstance(group, int) or str(group).isdigit():
        return int(group)
    try:
        return grp.getgrnam(str(group)).gr_gid
    except KeyError:
        return None


def is_approver(peer: Peer, approvers: Approvers) -> bool:
    if approvers.include_owner and peer.uid in (0, os.getuid()):
        return True
    names = {str(u) for u in approvers.users}
    if peer.user in names or str(peer.uid) in names:
        return True
    wanted = {g for g in (_gid(x) for x in approvers.groups) if g is not None}
    return bool(wanted & peer.groups())


def why_not(peer: Peer, approvers: Approvers) -> str:
    return (
        f"{peer.user} (uid {peer.uid}) is not an approver: approvers are the users "
        f"{[str(u) for u in approvers.users] or 'none'} and the members of the groups "
        f"{[str(g) for g in approvers.groups] or 'none'}"
        + (" and the daemon's owner" if approvers.include_owner else "")
        + " (config `approvers`)"
    )
