import platform

import pytest

from tgkit.runtime import reuse_freed_memory


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc",
                    reason="mallopt is glibc's")
def test_reuse_freed_memory_is_applied_once_on_glibc():
    assert reuse_freed_memory() is True   # both mallopt calls accepted
    assert reuse_freed_memory.cache_info().currsize == 1
    assert reuse_freed_memory() is True
