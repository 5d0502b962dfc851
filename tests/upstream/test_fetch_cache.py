"""The image fetcher's cache: lifetimes from Cache-Control, LRU by total bytes."""

import pytest

from aperture.upstream._fetch_cache import ExpiringLru, cache_ttl


@pytest.mark.parametrize(
    ("header", "ttl"),
    [
        ("", 300.0),
        ("public", 300.0),
        ("private", 300.0),
        ("max-age=60", 60.0),
        ("public, max-age=3600", 3600.0),
        ('max-age="120"', 120.0),
        ("MAX-AGE=5, must-revalidate", 5.0),
        ("max-age=0", None),
        ("max-age=-1", None),
        ("max-age=soon", None),
        ("max-age=1, max-age=999", 1.0),
        ("no-store", None),
        ("max-age=60, no-store", None),
        ("No-Cache", None),
    ],
)
def test_lifetime_follows_cache_control(header: str, ttl: float | None) -> None:
    assert cache_ttl(header, 300.0) == ttl


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_entries_expire_after_their_lifetime() -> None:
    clock = Clock()
    cache: ExpiringLru[bytes] = ExpiringLru(100, clock=clock)
    cache.put("a", b"x", size=1, ttl_s=10)
    clock.now += 9.9
    assert cache.get("a") == b"x"
    clock.now += 0.2
    assert cache.get("a") is None
    assert cache.total_bytes == 0
    assert len(cache) == 0


def test_the_least_recently_used_go_first_when_bytes_run_out() -> None:
    cache: ExpiringLru[str] = ExpiringLru(100, clock=Clock())
    cache.put("a", "A", size=40, ttl_s=60)
    cache.put("b", "B", size=40, ttl_s=60)
    assert cache.get("a") == "A"  # now "b" is the least recently used
    cache.put("c", "C", size=40, ttl_s=60)
    assert cache.get("b") is None
    assert cache.get("a") == "A"
    assert cache.get("c") == "C"
    assert cache.total_bytes == 80


def test_an_entry_bigger_than_the_budget_is_not_stored() -> None:
    cache: ExpiringLru[str] = ExpiringLru(100, clock=Clock())
    cache.put("a", "A", size=60, ttl_s=60)
    cache.put("huge", "H", size=101, ttl_s=60)
    assert cache.get("huge") is None
    assert cache.get("a") == "A"


def test_replacing_a_key_keeps_the_byte_count_right() -> None:
    cache: ExpiringLru[str] = ExpiringLru(100, clock=Clock())
    cache.put("a", "A", size=60, ttl_s=60)
    cache.put("a", "A2", size=30, ttl_s=60)
    assert cache.get("a") == "A2"
    assert cache.total_bytes == 30
    cache.clear()
    assert cache.get("a") is None
    assert cache.total_bytes == 0


def test_a_zero_budget_disables_caching() -> None:
    cache: ExpiringLru[str] = ExpiringLru(0, clock=Clock())
    cache.put("a", "A", size=1, ttl_s=60)
    assert cache.get("a") is None
