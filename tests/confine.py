"""Preludes for ``tests.server.serve``: run a real server under a real OS restriction.

The tests run as root, and root reads and writes whatever the permission bits say. These
take that away from the server process only, before it starts, so the kernel itself
refuses the server's reads and writes (EACCES, EROFS), as it does on a production volume
mounted for another user or read-only.
"""

from __future__ import annotations

# Drop CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH from the bounding set (so no child gets
# them back on exec) and from the effective, permitted and inheritable sets (capset,
# version 3 header): the server, still uid 0, is held to the owner's permission bits, so
# a store file chmod 000 answers its reads with EACCES.
FILE_PERMISSIONS_APPLY = """
import ctypes
_libc = ctypes.CDLL(None, use_errno=True)
_PR_CAPBSET_DROP, _DAC_OVERRIDE, _DAC_READ_SEARCH = 24, 1, 2
for _cap in (_DAC_OVERRIDE, _DAC_READ_SEARCH):
    if _libc.prctl(_PR_CAPBSET_DROP, _cap, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")
_header = (ctypes.c_uint32 * 2)(0x20080522, 0)
_data = (ctypes.c_uint32 * 6)()
if _libc.capget(_header, _data) != 0:
    raise OSError(ctypes.get_errno(), "capget")
for _i in range(3):
    _data[_i] &= ~((1 << _DAC_OVERRIDE) | (1 << _DAC_READ_SEARCH))
if _libc.capset(_header, _data) != 0:
    raise OSError(ctypes.get_errno(), "capset")
"""

# A mount namespace of the server's own, in which MODELSWAP_ROOT is bind-mounted on
# itself read-only: every write under the store fails with EROFS, for the server only.
READ_ONLY_STORE = """
import ctypes, os
_libc = ctypes.CDLL(None, use_errno=True)
_CLONE_NEWNS, _MS_RDONLY, _MS_REMOUNT, _MS_BIND, _MS_REC, _MS_PRIVATE = 0x20000, 0x1, 0x20, 0x1000, 0x4000, 0x40000
_root = os.environ["MODELSWAP_ROOT"].encode()
for _call in (
    lambda: _libc.unshare(_CLONE_NEWNS),
    lambda: _libc.mount(b"none", b"/", None, _MS_REC | _MS_PRIVATE, None),
    lambda: _libc.mount(_root, _root, None, _MS_BIND, None),
    lambda: _libc.mount(_root, _root, None, _MS_BIND | _MS_REMOUNT | _MS_RDONLY, None),
):
    if _call() != 0:
        raise OSError(ctypes.get_errno(), "making the store read-only")
"""
