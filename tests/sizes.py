"""Memory an object holds: the bytes of everything reachable from it that it alone reaches."""

from __future__ import annotations

import gc
import sys
import types


def deep_size(root: object) -> int:
    """Sum of sys.getsizeof over the objects reachable from `root` (classes, modules and
    functions excluded: they are shared with the rest of the process)."""
    seen: set[int] = set()
    stack = [root]
    total = 0
    while stack:
        obj = stack.pop()
        if id(obj) in seen or isinstance(obj, (type, types.ModuleType, types.FunctionType)):
            continue
        seen.add(id(obj))
        total += sys.getsizeof(obj)
        stack.extend(gc.get_referents(obj))
    return total
