#!/usr/bin/env python3
"""Runs a command with transparent huge pages disabled for it
(prctl PR_SET_THP_DISABLE, inherited across exec), so that its resident
memory grows in 4 KiB pages rather than 2 MiB steps and small per-connection
costs can be measured. usage: no_thp.py COMMAND [ARGS...]"""
import ctypes
import os
import sys

PR_SET_THP_DISABLE = 41
libc = ctypes.CDLL(None, use_errno=True)
if libc.prctl(PR_SET_THP_DISABLE, 1, 0, 0, 0) != 0:
    sys.exit(f"prctl(PR_SET_THP_DISABLE) failed: errno {ctypes.get_errno()}")
os.execvp(sys.argv[1], sys.argv[1:])
